// Maintenance benchmark: `forget --keep-last 1 --prune` on the repositories the file benchmark left
// (three snapshots of the Linux source tree: first, unchanged, incremental), Bulwark against restic
// in the same run, each on a fresh copy of its repository, alternating which goes first; then the
// daemon's idle cost: resident memory and CPU time of `bulwark daemon` with nothing due for a while.
//
// Usage: node dist/bench/ops.js [--data DIR] [--repeat N] [--idle SECONDS]
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { measure, runMain, type Measurement } from "./exec.js";
import { bulwarkCmd } from "./bulwark-cmd.js";

const TARGET = 0.7;

function say(msg: string): void {
  console.log(`[ops-bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function du(p: string): number {
  return Number(execFileSync("du", ["-sb", p], { encoding: "utf8" }).split("\t")[0]);
}

function fmt(m: Measurement): string {
  return `${m.wallS.toFixed(2)} s, ${(m.maxRssKiB / 1024).toFixed(0)} MiB, cpu ${(m.userS + m.sysS).toFixed(1)} s${m.ok ? "" : ` FAILED ${m.error ?? ""}`}`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function pruneBench(root: string, repeat: number): Promise<Record<string, unknown>> {
  const tool = (name: string) => {
    const dir = join(root, "tmp", name);
    return { dir, repo: join(dir, "repo"), password: fs.readFileSync(join(dir, "password"), "utf8").trim() };
  };
  const restic = tool("restic");
  const bulwark = tool("bulwark");
  for (const t of [restic, bulwark]) {
    if (!fs.existsSync(t.repo)) throw new Error(`${t.repo} is missing: run the file benchmark first (npm run bench -- --suites files)`);
  }
  const work = join(root, "ops");
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const timeFile = join(work, "time.txt");
  const rows: Array<{ round: number; bulwark: Measurement; restic: Measurement; before: Record<string, number>; after: Record<string, number> }> = [];
  for (let round = 1; round <= repeat; round++) {
    const copies = { bulwark: join(work, "bulwark-repo"), restic: join(work, "restic-repo") };
    fs.rmSync(copies.bulwark, { recursive: true, force: true });
    fs.rmSync(copies.restic, { recursive: true, force: true });
    execFileSync("cp", ["-a", bulwark.repo, copies.bulwark]);
    execFileSync("cp", ["-a", restic.repo, copies.restic]);
    const before = { bulwark: du(copies.bulwark), restic: du(copies.restic) };
    const runBulwark = (): Promise<Measurement> =>
      measure(...bulwarkCmd("forget", "--keep-last", "1", "--prune", "--quiet"), timeFile, { env: { ...process.env, BULWARK_REPO: copies.bulwark, BULWARK_PASSWORD: bulwark.password } });
    const runRestic = (): Promise<Measurement> =>
      measure("restic", ["forget", "--keep-last", "1", "--prune", "--repo", copies.restic, "--no-cache"], timeFile, { env: { ...process.env, RESTIC_PASSWORD: restic.password } });
    const [first, second] = round % 2 === 1 ? [runBulwark, runRestic] : [runRestic, runBulwark];
    const a = await first();
    const b = await second();
    const m = round % 2 === 1 ? { bulwark: a, restic: b } : { bulwark: b, restic: a };
    const after = { bulwark: du(copies.bulwark), restic: du(copies.restic) };
    rows.push({ round, ...m, before, after });
    say(`round ${round}: bulwark ${fmt(m.bulwark)} (${before.bulwark} -> ${after.bulwark} B); restic ${fmt(m.restic)} (${before.restic} -> ${after.restic} B)`);
    if (!m.bulwark.ok || !m.restic.ok) throw new Error("a forget --prune failed");
    // The kept snapshot must still be whole.
    execFileSync(...bulwarkCmd("check", "--read-data-subset", "10%"), { env: { ...process.env, BULWARK_REPO: copies.bulwark, BULWARK_PASSWORD: bulwark.password }, stdio: "ignore" });
  }
  fs.rmSync(work, { recursive: true, force: true });
  const ratio = median(rows.map((r) => r.bulwark.wallS)) / median(rows.map((r) => r.restic.wallS));
  say(`forget+prune ratio ${ratio.toFixed(2)} (target <= ${TARGET})`);
  return { rows, ratio, target: TARGET };
}

/** `bulwark daemon` with nothing due: RSS and CPU after a settling period, then over `seconds`. */
async function idleBench(seconds: number): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync("/tmp/bulwark-idle-");
  try {
    fs.mkdirSync(join(dir, "src"));
    fs.writeFileSync(join(dir, "src", "a.txt"), "idle\n");
    const env = { ...process.env, BULWARK_REPO: join(dir, "repo"), BULWARK_PASSWORD: "idle-bench" };
    execFileSync(...bulwarkCmd("init"), { env, stdio: "ignore" });
    const config = join(dir, "bulwark.yaml");
    const jobs = Array.from({ length: 10 }, (_, i) => `  job${i}: { source: s, repository: r, schedule: "0 3 1 1 *" }`).join("\n");
    fs.writeFileSync(config, `repositories: { r: { url: ${JSON.stringify(join(dir, "repo"))}, password: idle-bench } }\nsources: { s: { type: files, paths: [${JSON.stringify(join(dir, "src"))}] } }\njobs:\n${jobs}\ndaemon: { prune: false }\n`);
    const child = spawn(...bulwarkCmd("daemon", "--config", config), { stdio: "ignore", env });
    const pid = child.pid!;
    const sample = (): { rssKiB: number; cpuTicks: number } => {
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0), cpuTicks: Number(stat[11]) + Number(stat[12]) };
    };
    await new Promise((r) => setTimeout(r, 5000));
    const a = sample();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const b = sample();
    child.kill("SIGTERM");
    await new Promise((r) => child.on("exit", r));
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    const cpuS = (b.cpuTicks - a.cpuTicks) / ticks;
    const out = { jobs: 10, seconds, rssMiB: b.rssKiB / 1024, cpuSeconds: cpuS, cpuPercent: (100 * cpuS) / seconds };
    say(`daemon idle with 10 jobs: RSS ${out.rssMiB.toFixed(1)} MiB, CPU ${cpuS.toFixed(2)} s over ${seconds} s (${out.cpuPercent.toFixed(2)} %)`);
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { data: { type: "string" }, repeat: { type: "string" }, idle: { type: "string" } } });
  const root = resolve(values.data ?? process.env["BENCH_DATA"] ?? "/work/bench-data");
  const results: Record<string, unknown> = { started: new Date().toISOString() };
  results["prune"] = await pruneBench(root, Number(values.repeat ?? "2"));
  results["daemonIdle"] = await idleBench(Number(values.idle ?? "30"));
  const out = join(root, `ops-results-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
  say(`results written to ${out}`);
  return 0;
}

runMain(main);
