// How each backup tool is invoked. Every tool gets its own state directory
// (repository, HOME, caches), and its password only through the environment.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ToolName } from "./config.js";
import { must, run } from "./exec.js";
import { BULWARK_ENTRY, bulwarkBuilt, bulwarkCmd } from "./bulwark-cmd.js";

export interface Command {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly cwd?: string;
}

export interface Tool {
  readonly name: ToolName;
  readonly dir: string;
  readonly repo: string;
  /** Directories the tool keeps caches in (warmed and sized, never deleted mid-run). */
  readonly home: string;
  readonly env: NodeJS.ProcessEnv;
  /** Why the tool cannot run here, or undefined when it can. */
  unavailable(): string | undefined;
  version(): Promise<string>;
  init(): Command;
  /** `label` names the snapshot where the tool wants a name (borg). */
  backup(path: string, label: string): Command;
  /** Restores the latest snapshot into `target`, which exists and is empty. */
  restore(target: string): Promise<Command>;
}

interface Paths {
  readonly dir: string;
  readonly repo: string;
  readonly home: string;
}

function pathsFor(dir: string): Paths {
  return { dir, repo: join(dir, "repo"), home: join(dir, "home") };
}

/** A per-tool password, created once and kept in the tool's state dir (mode 0600). */
async function password(dir: string): Promise<string> {
  const file = join(dir, "password");
  if (existsSync(file)) return (await readFile(file, "utf8")).trim();
  const pw = randomBytes(24).toString("base64url");
  await mkdir(dir, { recursive: true });
  await writeFile(file, `${pw}\n`, { mode: 0o600 });
  return pw;
}

function baseEnv(p: Paths): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(RESTIC_|BORG_|BULWARK_)/.test(k)) env[k] = v;
  }
  return {
    ...env,
    HOME: p.home,
    XDG_CACHE_HOME: join(p.home, ".cache"),
    XDG_CONFIG_HOME: join(p.home, ".config"),
  };
}

async function firstLine(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, { env });
  const text = r.stdout.trim() || r.stderrTail.trim();
  return (r.code === 0 ? text.split("\n")[0] : undefined) ?? `unknown (${cmd} exit ${String(r.code)})`;
}

function onPath(cmd: string): string | undefined {
  const dirs = (process.env["PATH"] ?? "").split(":");
  return dirs.some((d) => d !== "" && existsSync(join(d, cmd))) ? undefined : `${cmd} not found on PATH`;
}

async function restic(dir: string): Promise<Tool> {
  const p = pathsFor(dir);
  const env = { ...baseEnv(p), RESTIC_PASSWORD: await password(dir), RESTIC_CACHE_DIR: join(p.home, ".cache", "restic") };
  return {
    name: "restic",
    ...p,
    env,
    unavailable: () => onPath("restic"),
    version: () => firstLine("restic", ["version"], env),
    init: () => ({ cmd: "restic", args: ["init", "--repo", p.repo] }),
    backup: (path) => ({ cmd: "restic", args: ["backup", "--repo", p.repo, path] }),
    restore: (target) => Promise.resolve({ cmd: "restic", args: ["restore", "latest", "--repo", p.repo, "--target", target] }),
  };
}

async function borg(dir: string): Promise<Tool> {
  const p = pathsFor(dir);
  const env = {
    ...baseEnv(p),
    BORG_PASSPHRASE: await password(dir),
    BORG_BASE_DIR: p.home,
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
    BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
  };
  return {
    name: "borg",
    ...p,
    env,
    unavailable: () => onPath("borg"),
    version: () => firstLine("borg", ["--version"], env),
    init: () => ({ cmd: "borg", args: ["init", "--encryption=repokey-blake2", p.repo] }),
    // Borg strips the leading "/" and stores work/... relative paths.
    backup: (path, label) => ({ cmd: "borg", args: ["create", "--compression", "zstd,3", `${p.repo}::${label}`, path] }),
    restore: async (target) => {
      const last = (await must("borg", ["list", "--short", "--last", "1", p.repo], { env })).trim();
      if (last === "") throw new Error("borg repository has no archives");
      return { cmd: "borg", args: ["extract", `${p.repo}::${last}`], cwd: target };
    },
  };
}

async function bulwark(dir: string): Promise<Tool> {
  const p = pathsFor(dir);
  const env = { ...baseEnv(p), BULWARK_REPO: p.repo, BULWARK_PASSWORD: await password(dir) };
  const node = (...args: string[]): Command => {
    const [cmd, argv] = bulwarkCmd(...args);
    return { cmd, args: argv };
  };
  return {
    name: "bulwark",
    ...p,
    env,
    unavailable: () => (bulwarkBuilt() ? undefined : `${BULWARK_ENTRY} not built (npm run build)`),
    version: () => firstLine(...bulwarkCmd("version"), env),
    init: () => node("init"),
    backup: (path) => node("backup", path),
    restore: (target) => Promise.resolve(node("restore", "latest", "--target", target)),
  };
}

const FACTORIES: Readonly<Record<ToolName, (dir: string) => Promise<Tool>>> = { bulwark, restic, borg };

export function makeTool(name: ToolName, dir: string): Promise<Tool> {
  return FACTORIES[name](dir);
}
