// The shape every CLI command module shares: its name, usage line, options (node:util parseArgs
// format), and a run function that gets a Context and returns an exit code. Its one-line summary
// is in the command table (commands/index.ts).
import type { ParseArgsConfig } from 'node:util';
import type { Context } from './context.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  name: string;
  usage: string;
  options: OptionSpec;
  run(ctx: Context, args: string[], values: Values): Promise<number>;
}

export function str(v: Values, key: string): string | undefined {
  const x = v[key];
  return typeof x === 'string' ? x : undefined;
}

export function strs(v: Values, key: string): string[] {
  const x = v[key];
  if (Array.isArray(x)) return x.filter((s): s is string => typeof s === 'string');
  return typeof x === 'string' ? [x] : [];
}

export function flag(v: Values, key: string): boolean {
  return v[key] === true;
}
