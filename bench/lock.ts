// One benchmark at a time per data directory: two runs would delete and
// recopy each other's working tree and repositories.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes BENCH_DATA/.bench.lock (replacing a stale one); released when the process exits. */
export function lockDataDir(dir: string): void {
  const file = join(dir, ".bench.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      process.on("exit", () => rmSync(file, { force: true }));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(readFileSync(file, "utf8").trim());
    if (Number.isInteger(holder) && holder > 0 && alive(holder)) {
      throw new Error(`another benchmark (pid ${holder}) is using ${dir}; wait for it or use another --data dir`);
    }
    rmSync(file, { force: true }); // stale lock from a run that died
  }
  throw new Error(`could not lock ${dir}`);
}
