// Benchmark data: two unpacked Linux source trees, fetched from Debian once
// and kept in the data directory, and the working tree built from them.
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SOURCES, type Layout, type SourceId } from "./config.js";
import { must } from "./exec.js";
import { removeTree } from "./fsutil.js";

/** Makes sure src-A and src-B exist; skips any that are already unpacked. */
export async function ensureSources(lay: Layout, say: (msg: string) => void): Promise<void> {
  await mkdir(lay.root, { recursive: true });
  for (const id of Object.keys(SOURCES) as SourceId[]) {
    const dest = lay.src[id];
    if (existsSync(dest)) continue;
    const { pkg, version } = SOURCES[id];
    const deb = await fetchDeb(lay.root, pkg, version, say);
    say(`unpacking ${deb} into ${dest}`);
    // Unpack next to the destination and rename at the end, so an interrupted
    // run never leaves a half-filled src-X behind that a later run would trust.
    const partial = `${dest}.partial`;
    await removeTree(partial);
    await mkdir(partial);
    await must("dpkg-deb", ["-x", join(lay.root, deb), join(partial, "deb")]);
    const tarball = join(partial, "deb", "usr", "src", `${pkg}.tar.xz`);
    await mkdir(join(partial, "tree"));
    // The tarball holds a single top directory, linux-source-6.1/.
    await must("tar", ["-xJf", tarball, "--strip-components=1", "-C", join(partial, "tree")]);
    await rename(join(partial, "tree"), dest);
    await removeTree(partial);
  }
}

/** Downloads the .deb into `dir` with apt-get unless it is already there. */
async function fetchDeb(dir: string, pkg: string, version: string, say: (msg: string) => void): Promise<string> {
  const name = `${pkg}_${version.replace(/^\d+:/, "")}_all.deb`;
  if (!existsSync(join(dir, name))) {
    say(`apt-get download ${pkg}=${version}`);
    await must("apt-get", ["download", `${pkg}=${version}`], { cwd: dir });
  }
  if (!existsSync(join(dir, name))) {
    const debs = (await readdir(dir)).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
    throw new Error(`expected ${name} after apt-get download; found ${debs.join(", ") || "nothing"}`);
  }
  return name;
}

/** Which source the working tree holds, or undefined if unknown/missing. */
export async function workHolds(lay: Layout): Promise<SourceId | undefined> {
  if (!existsSync(lay.work)) return undefined;
  const s = (await readFile(lay.workState, "utf8").catch(() => "")).trim();
  return s === "A" || s === "B" ? s : undefined;
}

/** Replaces the working tree with a fresh `cp -a` of the given source. */
export async function resetWork(lay: Layout, id: SourceId): Promise<void> {
  await removeTree(lay.workState);
  await removeTree(lay.work);
  await must("cp", ["-a", lay.src[id], lay.work]);
  await writeFile(lay.workState, `${id}\n`);
}
