// Exclude patterns, with restic's rules: a pattern without "/" matches any single path component
// (a file or directory name anywhere); a pattern with "/" is matched against the whole absolute
// path, and also excludes everything below a match. "*" and "?" stay within one component, "**"
// crosses components, "[...]" is a character class. A leading "!" re-includes what an earlier
// pattern excluded.
import * as fs from 'node:fs';
import { BulwarkError } from '../errors.js';

interface Rule {
  re: RegExp;
  negate: boolean;
  anywhere: boolean;
}

function globToRegExp(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          re += '(?:.*/)?';
          i++;
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

export class Excluder {
  private readonly rules: Rule[];
  readonly patterns: string[];

  constructor(patterns: readonly string[]) {
    this.patterns = patterns.filter((p) => p.trim() !== '' && !p.startsWith('#'));
    this.rules = this.patterns.map((raw) => {
      const negate = raw.startsWith('!');
      let p = negate ? raw.slice(1) : raw;
      if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
      const anywhere = !p.includes('/');
      const body = globToRegExp(p.startsWith('/') ? p.slice(1) : p);
      const re = anywhere ? new RegExp(`^${body}$`) : new RegExp(`^${p.startsWith('/') ? '' : '(?:.*/)?'}${body}(?:/.*)?$`);
      return { re, negate, anywhere };
    });
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** `absPath` is absolute with "/" separators. */
  excluded(absPath: string): boolean {
    let out = false;
    const rel = absPath.replace(/^\/+/, '');
    let base: string | undefined;
    for (const r of this.rules) {
      let hit: boolean;
      if (r.anywhere) {
        base ??= rel.slice(rel.lastIndexOf('/') + 1);
        hit = r.re.test(base);
      } else hit = r.re.test(rel);
      if (hit) out = !r.negate;
    }
    return out;
  }
}

export function readExcludeFile(file: string): string[] {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
  } catch (err) {
    throw new BulwarkError('USAGE', `cannot read exclude file ${file}: ${err instanceof Error ? err.message : String(err)}`, { subject: file });
  }
}
