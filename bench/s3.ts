// S3 benchmark: backup and restore of the benchmark tree to a local S3 (Ceph RGW on loopback,
// started with test/ceph-s3.sh), Bulwark against restic in the same run, alternating which goes
// first. An untimed round 0 goes through a counting proxy (test/fault-proxy.ts with no faults),
// which gives each tool's HTTP requests and bytes, the figures a provider bills; the timed rounds
// talk to RGW directly.
//
// Usage: node dist/bench/s3.js [--data DIR] [--source src-A] [--repeat N] [--keep]
//   --data DIR     benchmark data directory (default $BENCH_DATA or /work/bench-data)
//   --source NAME  tree under DIR to back up (default src-A, which no other suite modifies)
//   --repeat N     timed rounds; ratios use medians (default 1), after the counting round 0
// Writes DIR/s3/s3-results-<time>.json and prints a table.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FaultProxy } from "../test/fault-proxy.js";
import { measure, must, type Measurement } from "./exec.js";
import { bulwarkCmd } from "./bulwark-cmd.js";

const RESTORE_ROOT = process.env["BENCH_RESTORE_ROOT"] ?? (fs.existsSync("/dev/shm") ? "/dev/shm/bulwark-bench-s3" : undefined);

const SCRIPT = resolve(fileURLToPath(new URL("../../test/ceph-s3.sh", import.meta.url)));

function say(msg: string): void {
  console.log(`[s3-bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.createServer();
    s.once("error", () => r(false));
    s.listen(port, "127.0.0.1", () => s.close(() => r(true)));
  });
}

function du(p: string): number {
  return Number(execFileSync("du", ["-sb", p], { encoding: "utf8" }).split("\t")[0]);
}

interface Row {
  round: number;
  tool: "bulwark" | "restic";
  step: "backup" | "restore";
  m: Measurement;
  requests: number;
  byMethod: Record<string, number>;
  bytesUp: number;
  bytesDown: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { data: { type: "string" }, source: { type: "string" }, repeat: { type: "string" }, keep: { type: "boolean" } },
  });
  const dataDir = resolve(values.data ?? process.env["BENCH_DATA"] ?? "/work/bench-data");
  const source = join(dataDir, values.source ?? "src-A");
  const repeat = Number(values.repeat ?? "1");
  if (!fs.existsSync(source)) throw new Error(`${source} is missing: run the file benchmark's data preparation first (npm run bench -- --prepare-only)`);
  const work = join(dataDir, "s3");
  fs.rmSync(join(work, "run"), { recursive: true, force: true });
  fs.mkdirSync(join(work, "run"), { recursive: true });
  const cephDir = join(work, "run", "ceph");
  let port = 0;
  for (let i = 0; i < 50 && port === 0; i++) {
    const p = 12000 + Math.floor(Math.random() * 20000); // below the ephemeral range
    if ((await portFree(p)) && (await portFree(p + 1))) port = p;
  }
  say(`starting Ceph RGW on 127.0.0.1:${port}`);
  const out = execFileSync("bash", [SCRIPT, "start", cephDir, String(port)], { encoding: "utf8" });
  const vars = Object.fromEntries(out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  const proxy = await new FaultProxy(vars["S3_ENDPOINT"] ?? "").start();
  const stop = (): void => {
    try {
      execFileSync("bash", [SCRIPT, "stop", cephDir]);
    } catch {
      // best effort
    }
  };
  process.once("exit", stop);
  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: vars["AWS_ACCESS_KEY_ID"],
    AWS_SECRET_ACCESS_KEY: vars["AWS_SECRET_ACCESS_KEY"],
    AWS_REGION: vars["AWS_REGION"],
    BULWARK_PASSWORD: "bench-password",
    RESTIC_PASSWORD: "bench-password",
  };
  const sourceBytes = du(source);
  const timeFile = join(work, "run", "time.txt");
  const log = join(work, "run", "log.txt");
  const rows: Row[] = [];
  const counted = async (round: number, tool: Row["tool"], step: Row["step"], cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> => {
    const r0 = proxy.requests;
    const m0 = { ...proxy.byMethod };
    const up0 = proxy.bytesUp;
    const down0 = proxy.bytesDown;
    const m = await measure(cmd, args, timeFile, { env, log });
    const byMethod: Record<string, number> = {};
    for (const [k, v] of Object.entries(proxy.byMethod)) if (v - (m0[k] ?? 0) > 0) byMethod[k] = v - (m0[k] ?? 0);
    rows.push({ round, tool, step, m, requests: proxy.requests - r0, byMethod, bytesUp: proxy.bytesUp - up0, bytesDown: proxy.bytesDown - down0 });
    const last = rows.at(-1)!;
    say(`round ${round}${round === 0 ? " (counting, through the proxy)" : ""}: ${tool} ${step}: ${m.wallS.toFixed(1)} s, ${(m.maxRssKiB / 1024).toFixed(0)} MiB, ${last.requests} requests ${JSON.stringify(byMethod)}${m.ok ? "" : ` FAILED: ${m.error ?? ""}`}`);
    if (!m.ok) throw new Error(`${tool} ${step} failed; see ${log}`);
  };
  // Warm-up, untimed: the first few hundred megabytes written to a fresh in-memory Ceph cluster go
  // markedly slower (a first backup took 12.5 s against 8.5 s for the same backup just after),
  // which would penalize whichever tool runs first. One throwaway backup warms it for both.
  {
    const cache = join(work, "run", "restic-cache");
    const env = { ...baseEnv, RESTIC_REPOSITORY: `s3:${proxy.endpoint}/bench-warmup-${Date.now()}`, RESTIC_CACHE_DIR: cache };
    say("warm-up: one untimed restic backup to a scratch bucket");
    await must("restic", ["init", "--quiet"], { env });
    await must("restic", ["backup", source, "--quiet", "--host", "warmup"], { env });
    fs.rmSync(cache, { recursive: true, force: true });
  }
  // Round 0 goes through the counting proxy and gives the request and byte counts; the timed
  // rounds 1..N talk to RGW directly. The proxy runs in this process and moves every byte through
  // Node's HTTP stack: on two cores it took CPU from whichever tool was running, adding about the
  // same seconds to both and pulling their ratio towards 1.
  const endpoint = (round: number): string => (round === 0 ? proxy.endpoint : (vars["S3_ENDPOINT"] ?? ""));
  for (let round = 0; round <= repeat; round++) {
    const order: Array<Row["tool"]> = round % 2 === 1 ? ["bulwark", "restic"] : ["restic", "bulwark"];
    for (const tool of order) {
      const repo = `s3:${endpoint(round)}/bench-${tool}-${round}-${Date.now()}`;
      // Restores go to memory where there is /dev/shm (as in the file suite): writing 1.3 GB to the
      // disk made restore times swing from 9 to 25 s with the kernel's writeback, not the tools.
      const target = join(RESTORE_ROOT ?? join(work, "run"), `restore-${tool}`);
      fs.rmSync(target, { recursive: true, force: true });
      if (tool === "bulwark") {
        const env = { ...baseEnv, BULWARK_REPO: `${repo}/repo` };
        // Never a synchronous child here: the proxy runs in this process.
        await must(...bulwarkCmd("init", "--quiet"), { env });
        await counted(round, tool, "backup", ...bulwarkCmd("backup", source, "--quiet"), env);
        await counted(round, tool, "restore", ...bulwarkCmd("restore", "latest", "--target", target, "--quiet"), env);
      } else {
        const cache = join(work, "run", "restic-cache");
        fs.rmSync(cache, { recursive: true, force: true });
        const env = { ...baseEnv, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: cache };
        await must("restic", ["init", "--quiet"], { env });
        await counted(round, tool, "backup", "restic", ["backup", source, "--quiet", "--host", "bench"], env);
        await counted(round, tool, "restore", "restic", ["restore", "latest", "--target", target, "--quiet"], env);
        fs.rmSync(cache, { recursive: true, force: true });
      }
      // A restore that differs from the source would make the timing meaningless.
      execFileSync("diff", ["-r", "--no-dereference", "-q", source, join(target, source)], { stdio: "ignore" });
      fs.rmSync(target, { recursive: true, force: true });
    }
  }
  await proxy.stop();
  stop();
  const gb = sourceBytes / 1e9;
  const summary: Record<string, unknown> = {};
  const lines: string[] = [`source ${source}: ${(sourceBytes / 1e9).toFixed(2)} GB, ${repeat} timed round(s) direct to RGW (medians), requests from round 0 through the counting proxy`];
  lines.push("step     tool     time_s  rss_MiB  requests  req/GB  up_MB  down_MB");
  for (const step of ["backup", "restore"] as const) {
    const per: Record<string, { time: number; rss: number; req: number }> = {};
    for (const tool of ["bulwark", "restic"] as const) {
      const timed = rows.filter((r) => r.step === step && r.tool === tool && r.round > 0);
      const countedRows = rows.filter((r) => r.step === step && r.tool === tool && r.round === 0);
      const time = median(timed.map((r) => r.m.wallS));
      const rss = median(timed.map((r) => r.m.maxRssKiB / 1024));
      const req = median(countedRows.map((r) => r.requests));
      const up = median(countedRows.map((r) => r.bytesUp / 1e6));
      const down = median(countedRows.map((r) => r.bytesDown / 1e6));
      per[tool] = { time, rss, req };
      lines.push(`${step.padEnd(8)} ${tool.padEnd(8)} ${time.toFixed(1).padStart(6)}  ${rss.toFixed(0).padStart(7)}  ${String(req).padStart(8)}  ${(req / gb).toFixed(0).padStart(6)}  ${up.toFixed(0).padStart(5)}  ${down.toFixed(0).padStart(7)}`);
    }
    const b = per["bulwark"]!;
    const r = per["restic"]!;
    summary[step] = { time_ratio: b.time / r.time, rss_ratio: b.rss / r.rss, requests_ratio: b.req / r.req, bulwark: b, restic: r };
    lines.push(`${step.padEnd(8)} bulwark/restic: time ${(b.time / r.time).toFixed(2)}, rss ${(b.rss / r.rss).toFixed(2)}, requests ${(b.req / r.req).toFixed(2)}`);
  }
  console.log(lines.join("\n"));
  const file = join(work, `s3-results-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(file, JSON.stringify({ source, sourceBytes, repeat, rows, summary }, null, 2));
  say(`results in ${file}`);
  if (values.keep !== true) fs.rmSync(join(work, "run"), { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
