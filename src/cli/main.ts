#!/usr/bin/env node
// Entry point of the `bulwark` executable: global options, command dispatch, and the one place where
// errors become text (or JSON on stderr) and exit codes.
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { BulwarkError, isBulwarkError } from '../errors.js';
import { VERSION } from '../version.js';
import { commands } from './commands/index.js';
import type { Values } from './command.js';
import { Context } from './context.js';
import { Exit, exitFor } from './exit-codes.js';
import { heapFlags, heapMode } from './heap-mode.js';

// 1 MiB young-generation semi-spaces for the worker threads (chunking, restore), whose isolates are
// created after this and where the flag takes precedence over their resource limits. Set at run
// time it does not shrink this thread's heap: bin/bulwark caps that when the process starts (see
// heap-mode.ts).
setFlagsFromString('--max-semi-space-size=1');
// Restore creates directories with many mkdir calls in flight; libuv's default of 4 pool threads is too few
// on filesystems where creating a file takes hundreds of microseconds.
process.env['UV_THREADPOOL_SIZE'] ??= '16';

const GLOBAL = {
  repo: { type: 'string', short: 'r' },
  'password-file': { type: 'string' },
  config: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
} as const;

function help(): string {
  const lines = [
    `bulwark ${VERSION}: encrypted, deduplicated backups`,
    '',
    'Usage: bulwark [--repo LOCATION] [--password-file FILE] [--config FILE] [--json] [--quiet] COMMAND [ARGS]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'Environment: BULWARK_REPO, BULWARK_PASSWORD, BULWARK_PASSWORD_FILE, BULWARK_CONFIG',
    'Run `bulwark COMMAND --help` for a command\'s options; see docs/cli.md.',
  ];
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  let json = argv.includes('--json');
  try {
    for (const f of heapFlags(heapMode(argv), process.execArgv)) setFlagsFromString(f);
    const name = argv.find((a, i) => !a.startsWith('-') && !(i > 0 && ['--repo', '-r', '--password-file', '--config', '-c'].includes(argv[i - 1]!)));
    if (name === undefined || name === 'help') {
      process.stdout.write(help() + '\n');
      return argv.length === 0 ? Exit.USAGE : Exit.OK;
    }
    if (name === 'version') {
      process.stdout.write(json ? JSON.stringify({ version: VERSION }) + '\n' : `bulwark ${VERSION}\n`);
      return Exit.OK;
    }
    const entry = commands.find((c) => c.name === name);
    if (entry === undefined) {
      throw new BulwarkError('USAGE', `unknown command ${JSON.stringify(name)}`, { hint: 'run `bulwark help` for the list of commands' });
    }
    const cmd = await entry.load();
    const rest = [...argv];
    rest.splice(rest.indexOf(name), 1);
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: rest, options: { ...GLOBAL, ...cmd.options }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new BulwarkError('USAGE', `${cmd.name}: ${(err as Error).message}`, { hint: `usage: ${cmd.usage}` });
    }
    const v = parsed.values as Values;
    json = v['json'] === true;
    if (v['help'] === true) {
      process.stdout.write(`usage: ${cmd.usage}\n\n${entry.summary}\n`);
      return Exit.OK;
    }
    const ctx = new Context({
      repo: typeof v['repo'] === 'string' ? v['repo'] : undefined,
      passwordFile: typeof v['password-file'] === 'string' ? v['password-file'] : undefined,
      config: typeof v['config'] === 'string' ? v['config'] : undefined,
      json,
      quiet: v['quiet'] === true,
    });
    return await cmd.run(ctx, parsed.positionals, v);
  } catch (err) {
    return report(err, json);
  }
}

function report(err: unknown, json: boolean): number {
  const e = isBulwarkError(err)
    ? err
    : new BulwarkError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err, hint: 'this is a bug; please report it with the command you ran' });
  if (json) process.stderr.write(JSON.stringify({ error: e.toJSON() }) + '\n');
  else {
    process.stderr.write(`error [${e.code}]: ${e.message}\n`);
    if (e.hint !== undefined) process.stderr.write(`hint: ${e.hint}\n`);
    if (e.code === 'INTERNAL' && err instanceof Error && err.stack !== undefined && process.env['BULWARK_DEBUG'] !== undefined) {
      process.stderr.write(err.stack + '\n');
    }
  }
  return exitFor(e.code);
}

// Exiting runs the 'exit' handlers, which remove private temp directories (pipes, options files).
process.on('SIGINT', () => {
  process.stderr.write('\ninterrupted\n');
  process.exit(Exit.INTERRUPTED);
});
process.on('SIGTERM', () => process.exit(143));

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A failed command has reported and cleaned up; work it started in the background and no
    // longer needs (a repository still opening while the database was found unreachable, say)
    // must not keep the process alive.
    if (code !== Exit.OK) setTimeout(() => process.exit(code), 1000).unref();
  },
  (err: unknown) => {
    process.exitCode = report(err, false);
  },
);
