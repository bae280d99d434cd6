// Database benchmark: Bulwark's PostgreSQL backup and restore against `pg_dump | zstd -3` and
// `pg_restore` from a local dump file, side by side in one run, on a pgbench database of scale 50
// in a throwaway cluster; then 60 s of pgbench and a second backup, beside what pgBackRest's full
// and incremental backups store for the same cluster. See docs/benchmarks.md.
//
// Usage: node dist/bench/db.js [--repeat N] [--scale S] [--churn SECONDS] [--data DIR]
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { measure, must, run, runMain, type Measurement } from "./exec.js";
import { bulwarkCmd } from "./bulwark-cmd.js";

const PGBIN = "/usr/lib/postgresql/15/bin";
const TARGET = { backup: 1.3, restore: 1.3 };

function say(msg: string): void {
  console.log(`[db-bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function asPostgres(cmd: string, args: string[]): string {
  return execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a !== null ? res(a.port) : rej(new Error("no port"))));
    });
  });
}

interface Cluster {
  dir: string;
  data: string;
  port: number;
  url: string;
  pgbrConf: string;
}

async function startCluster(root: string): Promise<Cluster> {
  const dir = join(root, `pg-${randomBytes(3).toString("hex")}`);
  fs.mkdirSync(dir, { recursive: true });
  const data = join(dir, "data");
  const port = await freePort();
  const pgbrConf = join(dir, "pgbackrest.conf");
  fs.writeFileSync(
    pgbrConf,
    [
      "[global]",
      `repo1-path=${join(dir, "pgbr-repo")}`,
      "compress-type=zst",
      "compress-level=3",
      `log-path=${join(dir, "pgbr-log")}`,
      `lock-path=${join(dir, "pgbr-lock")}`,
      `spool-path=${join(dir, "pgbr-spool")}`,
      "log-level-console=warn",
      "log-level-file=off",
      "start-fast=y",
      "",
      "[bench]",
      `pg1-path=${data}`,
      `pg1-port=${port}`,
      `pg1-socket-path=${dir}`,
      "",
    ].join("\n"),
  );
  execFileSync("chown", ["-R", "postgres:postgres", dir]);
  asPostgres(`${PGBIN}/initdb`, ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]);
  fs.appendFileSync(
    join(data, "postgresql.conf"),
    [
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      "listen_addresses = '127.0.0.1'",
      "wal_level = replica",
      "archive_mode = on",
      `archive_command = 'pgbackrest --config=${pgbrConf} --stanza=bench archive-push %p'`,
      "max_wal_size = 4GB",
      "shared_buffers = 256MB",
      "",
    ].join("\n"),
  );
  asPostgres(`${PGBIN}/pg_ctl`, ["-D", data, "-w", "-l", join(dir, "log"), "start"]);
  return { dir, data, port, url: `postgresql://postgres@127.0.0.1:${port}`, pgbrConf };
}

function stopCluster(c: Cluster): void {
  try {
    asPostgres(`${PGBIN}/pg_ctl`, ["-D", c.data, "-m", "fast", "-w", "stop"]);
  } catch {
    // already down
  }
  fs.rmSync(c.dir, { recursive: true, force: true });
}

function psql(c: Cluster, sql: string, db = "postgres"): string {
  return execFileSync("psql", ["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", String(c.port), "-U", "postgres", "-d", db, "-c", sql], { encoding: "utf8" }).trim();
}

function pgbackrest(c: Cluster, args: string[]): string {
  return asPostgres("pgbackrest", [`--config=${c.pgbrConf}`, "--stanza=bench", ...args]);
}

function duBytes(p: string): number {
  return Number(execFileSync("du", ["-sb", p], { encoding: "utf8" }).split("\t")[0]);
}

interface Pair {
  round: number;
  bulwark: Measurement;
  reference: Measurement;
}

function ratio(pairs: Pair[]): number {
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  return med(pairs.map((p) => p.bulwark.wallS)) / med(pairs.map((p) => p.reference.wallS));
}

function fmt(m: Measurement): string {
  return `${m.wallS.toFixed(2)} s, ${(m.maxRssKiB / 1024).toFixed(0)} MiB, cpu ${(m.userS + m.sysS).toFixed(1)} s${m.ok ? "" : ` FAILED ${m.error ?? ""}`}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { repeat: { type: "string" }, scale: { type: "string" }, churn: { type: "string" }, data: { type: "string" }, help: { type: "boolean" } },
  });
  if (values.help === true) {
    console.log("usage: node dist/bench/db.js [--repeat N] [--scale S] [--churn SECONDS] [--data DIR]");
    return 0;
  }
  const repeat = Number(values.repeat ?? "2");
  const scale = Number(values.scale ?? "50");
  const churnS = Number(values.churn ?? "60");
  const root = resolve(values.data ?? process.env["BENCH_DATA"] ?? "/work/bench-data", "db");
  fs.mkdirSync(root, { recursive: true });
  for (const tool of ["pgbackrest", "zstd", "pgbench", "pg_dump", "pg_restore"]) {
    if ((await run("sh", ["-c", `command -v ${tool}`])).code !== 0) {
      console.error(`${tool} is missing: apt-get install pgbackrest zstd postgresql-client`);
      return 1;
    }
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const work = join(root, `run-${stamp}`);
  fs.mkdirSync(work, { recursive: true });
  fs.chmodSync(work, 0o755);
  const timeFile = join(work, "time.txt");
  const cluster = await startCluster(work);
  const env = { ...process.env, BULWARK_PASSWORD: "bench-db-password" };
  const results: Record<string, unknown> = { started: stamp, scale, repeat, churnS, machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version } };
  try {
    say(`cluster on port ${cluster.port}; pgbench -i -s ${scale}`);
    await must("pgbench", ["-i", "-q", "-s", String(scale), "-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres", "postgres"]);
    psql(cluster, "CHECKPOINT");
    const dbBytes = Number(psql(cluster, "SELECT pg_database_size('postgres')"));
    say(`database size ${(dbBytes / 1e6).toFixed(0)} MB`);
    results["databaseBytes"] = dbBytes;
    const dbUrl = `${cluster.url}/postgres`;
    const pgArgs = ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres"];

    // 1. Backup: a fresh repository per round (a first backup: everything compressed and stored).
    const backups: Pair[] = [];
    const zstFile = join(work, "dump.pgdump.zst");
    for (let round = 1; round <= repeat; round++) {
      const repo = join(work, `repo-b${round}`);
      await must(...bulwarkCmd("init", "--repo", repo), { env });
      const doBulwark = (): Promise<Measurement> => measure(...bulwarkCmd("db", "backup", dbUrl, "--repo", repo, "--quiet"), timeFile, { env });
      const doRef = (): Promise<Measurement> => measure("sh", ["-c", `pg_dump ${pgArgs.join(" ")} -Fc -Z0 -d postgres | zstd -3 -q -f -o ${zstFile}`], timeFile, {});
      const [first, second] = round % 2 === 1 ? [doBulwark, doRef] : [doRef, doBulwark];
      const a = await first();
      const b = await second();
      const pair = round % 2 === 1 ? { round, bulwark: a, reference: b } : { round, bulwark: b, reference: a };
      backups.push(pair);
      say(`backup round ${round}: bulwark ${fmt(pair.bulwark)}; pg_dump|zstd -3 ${fmt(pair.reference)}`);
      if (round < repeat) fs.rmSync(repo, { recursive: true, force: true });
    }
    const repo = join(work, `repo-b${repeat}`);
    results["backup"] = { pairs: backups, ratio: ratio(backups), target: TARGET.backup, zstdFileBytes: fs.statSync(zstFile).size, bulwarkRepoBytes: duBytes(repo) };
    say(`backup ratio ${ratio(backups).toFixed(2)} (target <= ${TARGET.backup}); repo ${duBytes(repo)} B, zstd file ${fs.statSync(zstFile).size} B`);

    // 2. Restore into a new database: pg_restore from a local (uncompressed) dump file vs bulwark db restore.
    const dumpFile = join(work, "dump.pgdump");
    await must("pg_dump", [...pgArgs, "-Fc", "-Z0", "-d", "postgres", "-f", dumpFile]);
    const restores: Pair[] = [];
    for (let round = 1; round <= repeat; round++) {
      for (const db of ["r_ref", "r_bw"]) psql(cluster, `DROP DATABASE IF EXISTS ${db}`);
      psql(cluster, "CREATE DATABASE r_ref");
      const doBulwark = (): Promise<Measurement> =>
        measure(...bulwarkCmd("db", "restore", "latest", "--repo", repo, "--to", cluster.url, "--database", "postgres", "--as", "r_bw", "--quiet"), timeFile, { env });
      const doRef = (): Promise<Measurement> => measure("pg_restore", [...pgArgs, "-d", "r_ref", dumpFile], timeFile, {});
      const [first, second] = round % 2 === 1 ? [doBulwark, doRef] : [doRef, doBulwark];
      const a = await first();
      psql(cluster, "CHECKPOINT");
      const b = await second();
      psql(cluster, "CHECKPOINT");
      const pair = round % 2 === 1 ? { round, bulwark: a, reference: b } : { round, bulwark: b, reference: a };
      restores.push(pair);
      say(`restore round ${round}: bulwark ${fmt(pair.bulwark)}; pg_restore ${fmt(pair.reference)}`);
      const check = (db: string): string => psql(cluster, "SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts", db);
      if (check("r_bw") !== check("postgres")) throw new Error("restored database differs from the source");
    }
    for (const db of ["r_ref", "r_bw"]) psql(cluster, `DROP DATABASE IF EXISTS ${db}`);
    results["restore"] = { pairs: restores, ratio: ratio(restores), target: TARGET.restore };
    say(`restore ratio ${ratio(restores).toFixed(2)} (target <= ${TARGET.restore})`);

    // 3. Churn: pgBackRest full, pgbench for a while, then a second Bulwark snapshot and a pgBackRest incr.
    pgbackrest(cluster, ["stanza-create"]);
    const pgbrFull = await measure("runuser", ["-u", "postgres", "--", "pgbackrest", `--config=${cluster.pgbrConf}`, "--stanza=bench", "backup", "--type=full"], timeFile, {});
    say(`pgbackrest full: ${fmt(pgbrFull)}`);
    say(`pgbench -T ${churnS}`);
    const pgbenchOut = await must("pgbench", ["-T", String(churnS), "-c", "4", "-j", "2", "-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres", "postgres"]);
    const tps = /tps = ([\d.]+)/.exec(pgbenchOut)?.[1];
    const repoBefore = duBytes(repo);
    const second = await run(...bulwarkCmd("db", "backup", dbUrl, "--repo", repo, "--json"), { env });
    const snap = JSON.parse(second.stdout) as { snapshot: { summary: { dataAdded: number; dataAddedPacked: number; totalBytesProcessed: number } } };
    const repoAfter = duBytes(repo);
    const pgbrIncr = await measure("runuser", ["-u", "postgres", "--", "pgbackrest", `--config=${cluster.pgbrConf}`, "--stanza=bench", "backup", "--type=incr"], timeFile, {});
    say(`pgbackrest incr: ${fmt(pgbrIncr)}`);
    const info = JSON.parse(pgbackrest(cluster, ["info", "--output=json"])) as Array<{ backup: Array<{ type: string; info: { size: number; delta: number; repository: { size: number; delta: number } } }> }>;
    const bk = info[0]?.backup ?? [];
    const full = bk.find((b) => b.type === "full");
    const incr = bk.find((b) => b.type === "incr");
    const churn = {
      pgbenchTps: tps === undefined ? null : Number(tps),
      bulwark: {
        dumpBytes: snap.snapshot.summary.totalBytesProcessed,
        addedRaw: snap.snapshot.summary.dataAdded,
        addedStored: snap.snapshot.summary.dataAddedPacked,
        repoGrowthBytes: repoAfter - repoBefore,
        repoFirstBytes: repoBefore,
      },
      pgbackrest: {
        full: { size: full?.info.size, stored: full?.info.repository.delta, wallS: pgbrFull.wallS },
        incr: { size: incr?.info.delta, stored: incr?.info.repository.delta, wallS: pgbrIncr.wallS },
        repoBytes: duBytes(join(cluster.dir, "pgbr-repo")),
      },
    };
    results["churn"] = churn;
    console.log(JSON.stringify(churn, null, 2));

    console.log("\n| step | bulwark (median s) | reference (median s) | ratio | target |");
    console.log("| --- | --- | --- | --- | --- |");
    for (const [name, pairs, target, ref] of [["backup", backups, TARGET.backup, "pg_dump -Fc -Z0 | zstd -3"], ["restore", restores, TARGET.restore, "pg_restore from a local file"]] as const) {
      const med = (f: (p: Pair) => number): string => [...pairs.map(f)].sort((a, b) => a - b)[pairs.length >> 1]!.toFixed(2);
      console.log(`| ${name} | ${med((p) => p.bulwark.wallS)} | ${med((p) => p.reference.wallS)} (${ref}) | ${ratio(pairs).toFixed(2)} | <= ${target} |`);
    }
    const out = join(root, `db-results-${stamp}.json`);
    fs.writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
    say(`results written to ${out}`);
    return 0;
  } finally {
    stopCluster(cluster);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

runMain(main);
