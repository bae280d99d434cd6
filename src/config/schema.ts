// A small schema checker for the config file: every field has a type, unknown keys are refused with
// the nearest known key suggested, and every problem is collected (not just the first) with the
// path of the field and the bad value, so one run of `bulwark config validate` lists them all.

export interface Problem {
  path: string;
  message: string;
}

export type Check = (value: unknown, path: string, problems: Problem[]) => unknown;

function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

export function suggest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = distance(word.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

const join = (path: string, key: string | number): string => (typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`);

export const str =
  (opts: { pattern?: RegExp; what?: string; oneOf?: readonly string[] } = {}): Check =>
  (v, path, problems) => {
    if (typeof v !== 'string' || v === '') {
      problems.push({ path, message: `must be a non-empty string${opts.what !== undefined ? ` (${opts.what})` : ''}, got ${show(v)}` });
      return undefined;
    }
    if (opts.oneOf !== undefined && !opts.oneOf.includes(v)) {
      const s = suggest(v, opts.oneOf);
      problems.push({ path, message: `must be one of ${opts.oneOf.join(', ')}, got ${show(v)}${s !== undefined ? ` (did you mean "${s}"?)` : ''}` });
      return undefined;
    }
    if (opts.pattern !== undefined && !opts.pattern.test(v)) {
      problems.push({ path, message: `must be ${opts.what ?? `like ${opts.pattern}`}, got ${show(v)}` });
      return undefined;
    }
    return v;
  };

export const int =
  (opts: { min?: number; max?: number } = {}): Check =>
  (v, path, problems) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || (opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
      const range = opts.min !== undefined || opts.max !== undefined ? ` from ${opts.min ?? '-∞'} to ${opts.max ?? '∞'}` : '';
      problems.push({ path, message: `must be a whole number${range}, got ${show(v)}` });
      return undefined;
    }
    return v;
  };

export const bool: Check = (v, path, problems) => {
  if (typeof v !== 'boolean') {
    problems.push({ path, message: `must be true or false, got ${show(v)}` });
    return undefined;
  }
  return v;
};

/** A string or a list of strings, as a list. */
export const strList =
  (item: Check = str()): Check =>
  (v, path, problems) => {
    const arr = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(arr)) {
      problems.push({ path, message: `must be a list of strings, got ${show(v)}` });
      return undefined;
    }
    return arr.map((x, i) => item(x, join(path, i), problems));
  };

export const list =
  (item: Check): Check =>
  (v, path, problems) => {
    if (!Array.isArray(v)) {
      problems.push({ path, message: `must be a list, got ${show(v)}` });
      return undefined;
    }
    return v.map((x, i) => item(x, join(path, i), problems));
  };

export interface Field {
  check: Check;
  required?: boolean;
}

/** An object with known keys; unknown keys are errors with a "did you mean". */
export const obj =
  (fields: Record<string, Field | Check>): Check =>
  (v, path, problems) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push({ path: path === '' ? '(top level)' : path, message: `must be a mapping (key: value), got ${show(v)}` });
      return undefined;
    }
    const out: Record<string, unknown> = {};
    const known = Object.keys(fields);
    for (const [k, val] of Object.entries(v)) {
      const f = fields[k];
      if (f === undefined) {
        const s = suggest(k, known);
        problems.push({ path: join(path, k), message: `unknown key${s !== undefined ? ` (did you mean "${s}"?)` : ''}; known keys here: ${known.join(', ')}` });
        continue;
      }
      const check = typeof f === 'function' ? f : f.check;
      const r = check(val, join(path, k), problems);
      if (r !== undefined) out[k] = r;
    }
    for (const [k, f] of Object.entries(fields)) {
      if (typeof f !== 'function' && f.required === true && !(k in v)) problems.push({ path: join(path, k), message: 'is required' });
    }
    return out;
  };

/** A mapping from user-chosen names to values of one shape. */
export const mapOf =
  (item: Check, namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/): Check =>
  (v, path, problems) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push({ path, message: `must be a mapping of names to settings, got ${show(v)}` });
      return undefined;
    }
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) {
      if (!namePattern.test(k)) {
        problems.push({ path: join(path, k), message: 'names may hold letters, digits, "_", "." and "-" and start with a letter or digit' });
        continue;
      }
      const r = item(val, join(path, k), problems);
      if (r !== undefined) out[k] = r;
    }
    return out;
  };
