// One benchmark step for one tool. Every timed command is preceded by an
// equal cache warm-up and a `sync`, and runs under GNU time.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Layout, SourceId, StepName, ToolName } from "./config.js";
import { workHolds } from "./data.js";
import { measure, must, type Measurement } from "./exec.js";
import { duBytes, removeTree, warm } from "./fsutil.js";
import type { Command, Tool } from "./tools.js";
import { verifyRestore, type Verification } from "./verify.js";

export type RecordName = StepName | "init";

export interface StepRecord {
  /** 1-based repetition of the whole sequence (see --repeat). */
  readonly round: number;
  readonly step: RecordName;
  readonly tool: ToolName;
  readonly status: "ok" | "failed" | "skipped";
  readonly error?: string;
  readonly measurement?: Measurement;
  /** `size` step: repository and cache sizes (du -sb). */
  readonly repoBytes?: number;
  readonly cacheBytes?: number;
  readonly verification?: Verification;
}

export interface StepContext {
  readonly round: number;
  readonly lay: Layout;
  readonly stamp: string;
  readonly timeoutS: number;
}

/** Runs `step` for `tool`; returns one record, or two for `first` (init + backup). */
export async function runStep(step: StepName, tool: Tool, ctx: StepContext): Promise<StepRecord[]> {
  try {
    switch (step) {
      case "first":
        return await first(tool, ctx);
      case "unchanged":
      case "incremental":
        return [await backup(step, tool, ctx)];
      case "restore":
        return [await restore(tool, ctx)];
      case "size":
        return [await size(tool, ctx)];
    }
  } catch (err) {
    return [{ round: ctx.round, step, tool: tool.name, status: "failed", error: err instanceof Error ? err.message : String(err) }];
  }
}

async function timed(step: RecordName, tool: Tool, c: Command, ctx: StepContext, warmPaths: readonly string[]): Promise<StepRecord> {
  for (const p of warmPaths) await warm(p);
  await must("sync", []);
  const log = join(ctx.lay.logs, `${ctx.round}-${tool.name}-${step}.log`);
  const m = await measure(c.cmd, c.args, `${log}.time`, { env: tool.env, log, timeoutS: ctx.timeoutS, ...(c.cwd === undefined ? {} : { cwd: c.cwd }) });
  return m.ok
    ? { round: ctx.round, step, tool: tool.name, status: "ok", measurement: m }
    : { round: ctx.round, step, tool: tool.name, status: "failed", error: `${m.error ?? "failed"} (log: ${log})`, measurement: m };
}

async function first(tool: Tool, ctx: StepContext): Promise<StepRecord[]> {
  // A fresh repository and fresh caches; the password file is kept.
  await removeTree(tool.repo);
  await removeTree(tool.home);
  await removeTree(restoreDir(tool));
  await removeTree(latestFile(tool));
  await mkdir(tool.home, { recursive: true });
  const init = await timed("init", tool, tool.init(), ctx, []);
  if (init.status !== "ok") return [init];
  return [init, await backup("first", tool, ctx)];
}

async function backup(step: StepName, tool: Tool, ctx: StepContext): Promise<StepRecord> {
  const holds = await workHolds(ctx.lay);
  await removeTree(latestFile(tool));
  const rec = await timed(step, tool, tool.backup(ctx.lay.work, `${step}-${ctx.stamp}-${ctx.round}`), ctx, [ctx.lay.work, tool.repo, tool.home]);
  if (rec.status === "ok" && holds !== undefined) await writeFile(latestFile(tool), `${holds}\n`);
  return rec;
}

/** Records which source tree the tool's latest snapshot holds, for restore checks. */
function latestFile(tool: Tool): string {
  return join(tool.dir, "latest.state");
}

async function latestSource(tool: Tool): Promise<SourceId> {
  const s = (await readFile(latestFile(tool), "utf8").catch(() => "")).trim();
  if (s === "A" || s === "B") return s;
  throw new Error(`no successful backup recorded in ${latestFile(tool)}; run the backup steps first`);
}

// Restores go to a RAM-backed directory when there is one (BENCH_RESTORE_ROOT overrides): on this
// shared disk, creating 78,000 files right after another tool deleted its restored tree measures the
// filesystem's backlog more than the tool. Every tool restores to the same kind of place.
const RESTORE_ROOT = process.env["BENCH_RESTORE_ROOT"] ?? (existsSync("/dev/shm") ? "/dev/shm/bulwark-bench" : undefined);

function restoreDir(tool: Tool): string {
  return RESTORE_ROOT === undefined ? join(tool.dir, "restore") : join(RESTORE_ROOT, tool.name);
}

async function restore(tool: Tool, ctx: StepContext): Promise<StepRecord> {
  const source = ctx.lay.src[await latestSource(tool)];
  const target = restoreDir(tool);
  await removeTree(target);
  await mkdir(target, { recursive: true });
  try {
    const rec = await timed("restore", tool, await tool.restore(target), ctx, [tool.repo, tool.home]);
    if (rec.status !== "ok") return rec;
    const verification = await verifyRestore(source, ctx.lay.work, target, join(ctx.lay.logs, `${ctx.round}-${tool.name}-verify.log`));
    return verification.ok
      ? { ...rec, verification }
      : { ...rec, status: "failed", error: `restore differs: ${verification.detail}`, verification };
  } finally {
    await removeTree(target);
  }
}

async function size(tool: Tool, ctx: StepContext): Promise<StepRecord> {
  return { round: ctx.round, step: "size", tool: tool.name, status: "ok", repoBytes: await duBytes(tool.repo), cacheBytes: await duBytes(tool.home) };
}
