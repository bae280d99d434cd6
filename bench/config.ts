// Command-line options, paths and targets for the benchmark.
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

export const TOOL_NAMES = ["bulwark", "restic", "borg"] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export const STEP_NAMES = ["first", "unchanged", "incremental", "restore", "size"] as const;
export type StepName = (typeof STEP_NAMES)[number];

/** Ratio bulwark/restic that each step should reach (time, or bytes for `size`). */
export const TARGETS: Readonly<Record<StepName, number>> = {
  first: 0.6,
  unchanged: 0.5,
  incremental: 0.6,
  restore: 0.7,
  size: 1.05,
};
/** Ratio bulwark/restic of peak RSS that every step should stay under. */
export const RSS_TARGET = 1.5;

/** The two Linux source versions: the first backup uses A, the incremental B. */
export const SOURCES = {
  A: { pkg: "linux-source-6.1", version: "6.1.190-1" },
  B: { pkg: "linux-source-6.1", version: "6.1.192-2" },
} as const;
export type SourceId = keyof typeof SOURCES;

export interface Options {
  readonly dataDir: string;
  readonly tools: readonly ToolName[];
  readonly steps: readonly StepName[];
  /** Per-command time limit in seconds. */
  readonly timeoutS: number;
  /** How many times to run the whole sequence; ratios use the per-step median. */
  readonly repeat: number;
  /** Only download and unpack the data, then exit. */
  readonly prepareOnly: boolean;
}

/** Root of the project checkout (this file compiles to dist/bench/config.js). */
export const PROJECT_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export const USAGE = `usage: node dist/bench/run.js [options]
  --data DIR          data directory (default: $BENCH_DATA or /work/bench-data)
  --only LIST         tools to run, comma-separated: ${TOOL_NAMES.join(",")}
  --steps LIST        steps to run, comma-separated: ${STEP_NAMES.join(",")}
                      (a later step reuses the repositories left by an earlier run)
  --repeat N          run the whole sequence N times, compare medians (default 1)
  --timeout SECONDS   kill a tool command after this long (default 3600)
  --prepare-only      only download and unpack the source trees
  -h, --help          show this help`;

export function parseOptions(argv: readonly string[]): Options | "help" {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      data: { type: "string" },
      only: { type: "string" },
      steps: { type: "string" },
      timeout: { type: "string" },
      repeat: { type: "string" },
      "prepare-only": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const timeoutS = values.timeout === undefined ? 3600 : Number(values.timeout);
  if (!(timeoutS > 0)) throw new Error(`--timeout: expected a positive number, got ${String(values.timeout)}`);
  const repeat = values.repeat === undefined ? 1 : Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: expected a positive integer, got ${String(values.repeat)}`);
  return {
    dataDir: resolve(values.data ?? process.env["BENCH_DATA"] ?? "/work/bench-data"),
    tools: parseList("--only", values.only, TOOL_NAMES),
    steps: parseList("--steps", values.steps, STEP_NAMES),
    timeoutS,
    repeat,
    prepareOnly: values["prepare-only"],
  };
}

/** Parses a comma-separated subset of `all`, keeping the canonical order. */
function parseList<T extends string>(flag: string, raw: string | undefined, all: readonly T[]): readonly T[] {
  if (raw === undefined) return all;
  const wanted = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const w of wanted) {
    if (!(all as readonly string[]).includes(w)) throw new Error(`${flag}: unknown value ${JSON.stringify(w)}; expected ${all.join(",")}`);
  }
  if (wanted.length === 0) throw new Error(`${flag}: empty list`);
  return all.filter((a) => wanted.includes(a));
}

/** Fixed layout of the data directory. */
export interface Layout {
  readonly root: string;
  readonly src: Readonly<Record<SourceId, string>>;
  /** The working tree every tool backs up (always the same path). */
  readonly work: string;
  /** Records which source the working tree currently holds. */
  readonly workState: string;
  /** Per-tool state: repository, caches, restore target. */
  readonly toolDir: (tool: ToolName) => string;
  readonly logs: string;
}

export function layout(dataDir: string, stamp: string): Layout {
  return {
    root: dataDir,
    src: { A: join(dataDir, "src-A"), B: join(dataDir, "src-B") },
    work: join(dataDir, "work"),
    workState: join(dataDir, "work.state"),
    toolDir: (tool) => join(dataDir, "tmp", tool),
    logs: join(dataDir, "logs", stamp),
  };
}
