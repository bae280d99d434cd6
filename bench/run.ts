// Benchmark: bulwark vs restic vs borg on two Linux source trees.
// See docs/benchmarks.md. Usage: npm run bench -- [--only ...] [--steps ...]
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { STEP_NAMES, USAGE, layout, parseOptions, type Layout, type Options, type StepName, type ToolName } from "./config.js";
import { killRunning, runMain } from "./exec.js";
import { ensureSources, resetWork, workHolds } from "./data.js";
import { summarize } from "./fsutil.js";
import { lockDataDir } from "./lock.js";
import { comparisons, formatComparisons, formatRecords } from "./report.js";
import { runStep, type StepContext, type StepRecord } from "./steps.js";
import { makeTool, type Tool } from "./tools.js";

function say(msg: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

/** Puts the working tree in the state a step expects (untimed). */
async function prepareWork(step: StepName, lay: Layout): Promise<void> {
  const holds = await workHolds(lay);
  if (step === "first") {
    say(`cp -a ${lay.src.A} ${lay.work}`);
    await resetWork(lay, "A");
  } else if (step === "unchanged" && holds !== "A") {
    say(`warning: ${lay.work} did not hold src-A; recopying, so this is not a true unchanged re-backup`);
    await resetWork(lay, "A");
  } else if (step === "incremental") {
    say(`rm -rf ${lay.work} && cp -a ${lay.src.B} ${lay.work}`);
    await resetWork(lay, "B");
  }
}

/** Rotates the tool order per step and per round so no tool always goes first. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const k = items.length === 0 ? 0 : by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

async function runRound(round: number, opts: Options, lay: Layout, stamp: string, tools: readonly Tool[]): Promise<StepRecord[]> {
  const ctx: StepContext = { round, lay, stamp, timeoutS: opts.timeoutS };
  const records: StepRecord[] = [];
  const broken = new Map<ToolName, string>();
  for (const t of tools) {
    const why = t.unavailable();
    if (why !== undefined) broken.set(t.name, why);
  }
  for (const step of opts.steps) {
    await prepareWork(step, lay);
    for (const tool of rotate(tools, STEP_NAMES.indexOf(step) + round - 1)) {
      const why = broken.get(tool.name);
      if (why !== undefined) {
        records.push({ round, step, tool: tool.name, status: "skipped", error: why });
        say(`${step} ${tool.name}: skipped (${why})`);
        continue;
      }
      say(`${step} ${tool.name} ...`);
      for (const rec of await runStep(step, tool, ctx)) {
        records.push(rec);
        const m = rec.measurement;
        const figures = m ? ` ${m.wallS.toFixed(2)} s, ${(m.maxRssKiB / 1024).toFixed(1)} MiB` : "";
        say(`${rec.step} ${tool.name}: ${rec.status}${figures}${rec.error ? ` - ${rec.error}` : ""}`);
        if (rec.status === "failed") broken.set(tool.name, `earlier failure in ${rec.step}`);
      }
    }
  }
  return records;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts === "help") {
    console.log(USAGE);
    return 0;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const lay = layout(opts.dataDir, stamp);
  say(`data dir ${lay.root}`);
  await mkdir(lay.root, { recursive: true });
  lockDataDir(lay.root);
  await ensureSources(lay, say);
  if (opts.prepareOnly) return 0;
  await mkdir(lay.logs, { recursive: true });

  const tools = await Promise.all(opts.tools.map((name) => makeTool(name, lay.toolDir(name))));
  const versions = Object.fromEntries(
    await Promise.all(tools.map(async (t) => [t.name, t.unavailable() ?? (await t.version())] as const)),
  );
  const [srcA, srcB] = await Promise.all([summarize(lay.src.A), summarize(lay.src.B)]);
  const records: StepRecord[] = [];
  for (let round = 1; round <= opts.repeat; round++) {
    if (opts.repeat > 1) say(`round ${round} of ${opts.repeat}`);
    records.push(...(await runRound(round, opts, lay, stamp, tools)));
  }
  const cmp = comparisons(records);

  console.log(`\n${formatRecords(records)}\n\n${formatComparisons(cmp)}\n`);
  const cpu = os.cpus()[0]?.model ?? "unknown";
  const doc = {
    started: stamp,
    machine: { cpus: os.cpus().length, cpu, memBytes: os.totalmem(), kernel: os.release(), node: process.version },
    versions,
    data: { dir: lay.root, srcA, srcB, work: lay.work },
    options: { tools: opts.tools, steps: opts.steps, repeat: opts.repeat, timeoutS: opts.timeoutS },
    records,
    comparisons: cmp,
  };
  const out = join(lay.root, `results-${stamp}.json`);
  await writeFile(out, `${JSON.stringify(doc, null, 2)}\n`);
  say(`results written to ${out}; logs in ${lay.logs}`);
  // Reference tools failing means the harness or machine is broken; bulwark failing is reported only.
  return records.some((r) => r.status === "failed" && r.tool !== "bulwark") ? 1 : 0;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    killRunning();
    process.exit(130);
  });
}

runMain(main);
