// Process helpers: plain runs for setup work, and measured runs wrapped in
// GNU time for the benchmark itself. Secrets only ever travel in `env`.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";

export const GNU_TIME = "/usr/bin/time";

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Append the command's stdout and stderr to this file. */
  readonly log?: string;
  /** Kill the command after this many seconds. */
  readonly timeoutS?: number;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** Captured stdout (only when no log file is given). */
  readonly stdout: string;
  /** Last few KiB of stderr, for error messages. */
  readonly stderrTail: string;
}

const TAIL_BYTES = 4096;

/** Process groups of running children, so an interrupted harness can end them. */
const running = new Set<number>();

/** Sends SIGKILL to every child process group still running (for SIGINT/SIGTERM). */
export function killRunning(): void {
  for (const pid of running) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Runs a command to completion. Never rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // own process group, so a timeout kills the whole tree
    });
    const pid = child.pid;
    if (pid !== undefined) running.add(pid);
    const log = opts.log === undefined ? undefined : createWriteStream(opts.log, { flags: "a" });
    let stdout = "";
    let stderrTail = "";
    child.stdout.on("data", (b: Buffer) => {
      if (log) log.write(b);
      else stdout += b.toString("utf8");
    });
    child.stderr.on("data", (b: Buffer) => {
      log?.write(b);
      stderrTail = (stderrTail + b.toString("utf8")).slice(-TAIL_BYTES);
    });
    let timedOut = false;
    const timer =
      opts.timeoutS === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            if (pid !== undefined) process.kill(-pid, "SIGKILL");
          }, opts.timeoutS * 1000);
    child.on("error", (err) => {
      if (timer) clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      reject(err);
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (pid !== undefined) running.delete(pid);
      const done = (): void => resolve({ code, signal, timedOut, stdout, stderrTail });
      if (log) log.end(done);
      else done();
    });
  });
}

/** Runs a command and throws unless it exits 0. Returns stdout. */
export async function must(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${describe(cmd, args)} failed: ${failure(r)}`);
  return r.stdout;
}

export function failure(r: RunResult): string {
  if (r.timedOut) return "timed out";
  const why = r.signal === null ? `exit ${String(r.code)}` : `signal ${r.signal}`;
  const tail = r.stderrTail.trim().split("\n").slice(-3).join(" | ");
  return tail === "" ? why : `${why}: ${tail}`;
}

export function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].join(" ");
}

export interface Measurement {
  readonly ok: boolean;
  readonly error?: string;
  /** Elapsed wall-clock seconds as reported by GNU time. */
  readonly wallS: number;
  /** Maximum resident set size in KiB (GNU time %M). */
  readonly maxRssKiB: number;
  readonly userS: number;
  readonly sysS: number;
}

/**
 * Runs a command under `/usr/bin/time` and returns its wall time and peak RSS.
 * GNU time writes its figures to `timeFile`, apart from the command's output.
 */
export async function measure(cmd: string, args: readonly string[], timeFile: string, opts: RunOptions): Promise<Measurement> {
  await rm(timeFile, { force: true });
  const started = performance.now();
  const r = await run(GNU_TIME, ["-f", "%e %M %U %S", "-o", timeFile, cmd, ...args], opts);
  const fallbackWall = (performance.now() - started) / 1000;
  const parsed = parseTime(await readFile(timeFile, "utf8").catch(() => ""));
  await rm(timeFile, { force: true });
  const base = parsed ?? { wallS: fallbackWall, maxRssKiB: 0, userS: 0, sysS: 0 };
  return r.code === 0 ? { ok: true, ...base } : { ok: false, error: failure(r), ...base };
}

function parseTime(text: string): Omit<Measurement, "ok" | "error"> | undefined {
  // On a non-zero exit GNU time first writes "Command exited with non-zero status N".
  const line = text.trim().split("\n").at(-1) ?? "";
  const fields = line.trim().split(/\s+/).map(Number);
  const [wallS, maxRssKiB, userS, sysS] = fields;
  if (fields.length !== 4 || wallS === undefined || maxRssKiB === undefined || userS === undefined || sysS === undefined)
    return undefined;
  if (fields.some((n) => !Number.isFinite(n))) return undefined;
  return { wallS, maxRssKiB, userS, sysS };
}

/** Runs a benchmark's main: its result is the exit code, a throw prints the stack and exits 1. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : err);
      process.exitCode = 1;
    },
  );
}
