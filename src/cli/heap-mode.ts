// How the JavaScript heap trades memory for speed (BULWARK_HEAP):
//   lean  a small young generation and old-generation growth in steps of 20 %, so the resident set
//         stays close to what is live. The young generation's size can only be capped when the
//         process starts, which bin/bulwark does (--max-semi-space-size=4); the rest is set here
//         at run time (--heap-growing-percent=20). A process started without that cap (node
//         dist/src/cli/main.js) gets V8's --optimize-for-size instead, which also keeps the young
//         generation small when set at run time, but makes V8 compile for size: the incremental
//         backup of the Linux tree took 4.6-4.7 s with it against 4.0-4.4 s without, at about the
//         same peak memory (docs/benchmarks.md, 2026-12-05);
//   fast  V8's defaults: the heap grows in larger steps and is collected less often.
// The default is lean, except when a repository of the command is remote (s3:...), where the AWS
// SDK's allocations made lean collections cost a quarter of a restore's time (measured: restore of
// the Linux tree from Ceph RGW 4.1-4.5 s fast against 5.4-5.8 s lean, at 270-290 MiB against
// 220-230 MiB peak). docs/benchmarks.md has the figures for local repositories.
import { BulwarkError } from '../errors.js';

export type HeapMode = 'lean' | 'fast';

const REPO_OPTIONS = ['--repo', '-r', '--from-repo', '--to-repo'];

/** The repository locations named on the command line or in BULWARK_REPO. */
function repositories(argv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  argv.forEach((a, i) => {
    if (REPO_OPTIONS.includes(a) && argv[i + 1] !== undefined) out.push(argv[i + 1]!);
    const eq = a.indexOf('=');
    if (eq > 0 && REPO_OPTIONS.includes(a.slice(0, eq))) out.push(a.slice(eq + 1));
  });
  if (env['BULWARK_REPO'] !== undefined) out.push(env['BULWARK_REPO']);
  return out;
}

export function heapMode(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): HeapMode {
  const v = env['BULWARK_HEAP'];
  if (v !== undefined && v !== '') {
    if (v === 'lean' || v === 'fast') return v;
    throw new BulwarkError('USAGE', `BULWARK_HEAP must be "lean" or "fast", not ${JSON.stringify(v)}`, { subject: 'BULWARK_HEAP' });
  }
  return repositories(argv, env).some((r) => /^s3:/i.test(r)) ? 'fast' : 'lean';
}

/** The start option of bin/bulwark that caps the main thread's young generation (see above). */
export const YOUNG_CAP_OPTION = '--max-semi-space-size=4';

/** Largest semi-space (MiB) given at start that still counts as a cap for lean mode. */
const MAX_CAPPED_SEMI_SPACE = 8;

/**
 * The V8 flags to set at run time for `mode`, given the options node was started with
 * (`process.execArgv`). Node takes V8 options only in the `--name=value` form; V8 accepts
 * underscores for dashes.
 */
export function heapFlags(mode: HeapMode, execArgv: readonly string[]): string[] {
  if (mode === 'fast') return [];
  const capped = execArgv.some((a) => {
    const m = /^--max[-_]semi[-_]space[-_]size=(\d+)$/.exec(a);
    return m !== null && Number(m[1]) <= MAX_CAPPED_SEMI_SPACE;
  });
  return capped ? ['--heap-growing-percent=20'] : ['--optimize-for-size'];
}
