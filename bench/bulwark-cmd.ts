// How the benchmarks start bulwark: as users do, through the `bulwark` command (bin/bulwark, which
// sets the process-start settings it documents), unless BENCH_BULWARK_MAIN points at another build's
// dist/src/cli/main.js, which is then run with node directly (for A/B runs of two builds), with the
// same young-generation cap bin/bulwark gives node (src/cli/heap-mode.ts).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { YOUNG_CAP_OPTION } from "../src/cli/heap-mode.js";
import { PROJECT_ROOT } from "./config.js";

const other = process.env["BENCH_BULWARK_MAIN"];

/** The file that must exist for bulwark to run. */
export const BULWARK_ENTRY = other ?? join(PROJECT_ROOT, "bin", "bulwark");

/** Command and arguments that run `bulwark ARGS...`. */
export function bulwarkCmd(...args: string[]): [string, string[]] {
  return other === undefined ? [BULWARK_ENTRY, args] : [process.execPath, [YOUNG_CAP_OPTION, other, ...args]];
}

/** Whether the entry point is built. */
export function bulwarkBuilt(): boolean {
  return existsSync(BULWARK_ENTRY) && existsSync(join(PROJECT_ROOT, "dist", "src", "cli", "main.js"));
}
