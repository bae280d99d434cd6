// How the JavaScript heap trades memory for speed (BULWARK_HEAP):
//   lean  V8's --optimize-for-size: small heap growth steps and an eager memory reducer, so the
//         resident set stays close to what is live, at the cost of many more full collections.
//         Set at run time, it also keeps the young generation at its initial 1 MiB semi-spaces
//         (a --max-semi-space-size set at run time would not: it only applies to heaps created
//         later);
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
