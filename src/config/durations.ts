// Durations in the config file and CLI: "30s", "5m", "2h", "7d", "1w", "1y", or combinations ("1h30m").
import { BulwarkError } from '../errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 };

export function parseDurationMs(text: string): number {
  const re = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let pos = 0;
  const s = text.trim();
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
    while (s[pos] === ' ') pos++;
    re.lastIndex = pos;
  }
  if (pos !== s.length || s === '') throw new BulwarkError('USAGE', `not a duration: ${JSON.stringify(text)}`, { hint: 'use e.g. 30s, 5m, 2h, 7d, 1h30m' });
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= n) {
      parts.push(`${Math.floor(rest / n)}${u}`);
      rest %= n;
    }
  }
  return parts.join('');
}
