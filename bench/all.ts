// `npm run bench`: the file benchmark (bench/run.ts: bulwark, restic and borg on the Linux source
// tree), then the database benchmark (bench/db.ts), the maintenance benchmark (bench/ops.ts:
// forget + prune against restic, daemon idle cost) and the S3 benchmark (bench/s3.ts: backup and
// restore to a local Ceph RGW against restic), each in its own process.
//   --suites files,db,ops,s3  which to run (default: all)
//   --db-repeat N --db-scale S --db-churn SECONDS   passed to bench/db.ts
// Every other argument goes to bench/run.ts (see docs/benchmarks.md).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const SUITES = ["files", "db", "ops", "s3"] as const;
const args = process.argv.slice(2);
let suites: string[] = [...SUITES];
const fileArgs: string[] = [];
const dbArgs: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  const v = args[i + 1];
  if (a === "--suites" && v !== undefined) {
    suites = v.split(",");
    i++;
  } else if (a.startsWith("--db-") && v !== undefined) {
    dbArgs.push(`--${a.slice(5)}`, v);
    i++;
  } else fileArgs.push(a);
}
for (const s of suites) {
  if (!(SUITES as readonly string[]).includes(s)) {
    console.error(`unknown suite ${s}; suites: ${SUITES.join(", ")}`);
    process.exit(2);
  }
}
const data = fileArgs.includes("--data") ? ["--data", fileArgs[fileArgs.indexOf("--data") + 1]!] : [];
let failed = false;
for (const s of suites) {
  const script = fileURLToPath(new URL(s === "files" ? "./run.js" : `./${s}.js`, import.meta.url));
  const r = spawnSync(process.execPath, [script, ...(s === "files" ? fileArgs : s === "db" ? [...dbArgs, ...data] : data)], { stdio: "inherit" });
  if (r.status !== 0) failed = true;
}
process.exitCode = failed ? 1 : 0;
