// Turns step records into ratios, a printed table and a JSON document.
import { RSS_TARGET, STEP_NAMES, TARGETS, type ToolName } from "./config.js";
import type { RecordName, StepRecord } from "./steps.js";

export type Metric = "time_s" | "peak_rss_mib" | "bytes";

export interface Comparison {
  readonly step: RecordName | "peak";
  readonly metric: Metric;
  readonly values: Partial<Record<ToolName, number>>;
  readonly bulwarkVsRestic?: number;
  readonly bulwarkVsBorg?: number;
  /** Upper bound for bulwark/restic, where one is set. */
  readonly target?: number;
  readonly met?: boolean;
}

const MIB = 1024 * 1024;
const RECORD_ORDER: readonly RecordName[] = ["init", ...STEP_NAMES];

function valueOf(r: StepRecord, metric: Metric): number | undefined {
  if (r.status !== "ok") return undefined;
  if (metric === "bytes") return r.repoBytes;
  if (metric === "time_s") return r.measurement?.wallS;
  return r.measurement === undefined ? undefined : r.measurement.maxRssKiB / 1024;
}

function targetFor(step: RecordName | "peak", metric: Metric): number | undefined {
  if (metric === "peak_rss_mib") return step === "init" ? undefined : RSS_TARGET;
  if (step === "init" || step === "peak") return undefined;
  return TARGETS[step];
}

function compare(step: RecordName | "peak", metric: Metric, values: Partial<Record<ToolName, number>>): Comparison {
  const ratio = (other: number | undefined): number | undefined =>
    values.bulwark === undefined || other === undefined || other === 0 ? undefined : values.bulwark / other;
  const vsRestic = ratio(values.restic);
  const vsBorg = ratio(values.borg);
  const target = targetFor(step, metric);
  return {
    step,
    metric,
    values,
    ...(vsRestic === undefined ? {} : { bulwarkVsRestic: vsRestic }),
    ...(vsBorg === undefined ? {} : { bulwarkVsBorg: vsBorg }),
    ...(target === undefined ? {} : { target }),
    ...(target === undefined || vsRestic === undefined ? {} : { met: vsRestic <= target }),
  };
}

function median(xs: readonly number[]): number | undefined {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const hi = sorted[mid];
  const lo = sorted.length % 2 === 0 ? sorted[mid - 1] : hi;
  return lo === undefined || hi === undefined ? undefined : (lo + hi) / 2;
}

/** Median per tool of the values `pick` returns for the records of each round. */
function medians(records: readonly StepRecord[], pick: (rs: readonly StepRecord[]) => number | undefined): Partial<Record<ToolName, number>> {
  const perTool = new Map<ToolName, number[]>();
  const rounds = [...new Set(records.map((r) => r.round))];
  for (const tool of new Set(records.map((r) => r.tool))) {
    for (const round of rounds) {
      const v = pick(records.filter((r) => r.tool === tool && r.round === round));
      if (v !== undefined) perTool.set(tool, [...(perTool.get(tool) ?? []), v]);
    }
  }
  const out: Partial<Record<ToolName, number>> = {};
  for (const [tool, vs] of perTool) {
    const m = median(vs);
    if (m !== undefined) out[tool] = m;
  }
  return out;
}

/** Bulwark's ratios to restic and borg per step and metric (medians over rounds). */
export function comparisons(records: readonly StepRecord[]): Comparison[] {
  const out: Comparison[] = [];
  const present = new Set(records.map((r) => r.step));
  for (const step of RECORD_ORDER.filter((s) => present.has(s))) {
    const metrics: Metric[] = step === "size" ? ["bytes"] : ["time_s", "peak_rss_mib"];
    for (const metric of metrics) {
      const values = medians(records, (rs) => {
        const r = rs.find((x) => x.step === step);
        return r === undefined ? undefined : valueOf(r, metric);
      });
      out.push(compare(step, metric, values));
    }
  }
  // Peak memory over all timed steps of a round, per tool.
  const peak = medians(records, (rs) => {
    const vs = rs.map((r) => valueOf(r, "peak_rss_mib")).filter((v) => v !== undefined);
    return vs.length === 0 ? undefined : Math.max(...vs);
  });
  if (Object.keys(peak).length > 0) out.push(compare("peak", "peak_rss_mib", peak));
  return out;
}

function fmt(n: number | undefined, metric: Metric): string {
  if (n === undefined) return "-";
  if (metric === "bytes") return `${(n / MIB).toFixed(1)} MiB`;
  if (metric === "time_s") return `${n.toFixed(2)} s`;
  return `${n.toFixed(1)} MiB`;
}

function ratio(n: number | undefined): string {
  return n === undefined ? "-" : n.toFixed(2);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function formatRecords(records: readonly StepRecord[]): string {
  const rows = records.map((r) => {
    const m = r.measurement;
    const note =
      r.status !== "ok"
        ? (r.error ?? r.status)
        : r.step === "size"
          ? `repo ${fmt(r.repoBytes, "bytes")}, cache ${fmt(r.cacheBytes, "bytes")}`
          : (r.verification?.detail ?? "");
    return [
      String(r.round),
      r.step,
      r.tool,
      r.status,
      m ? m.wallS.toFixed(2) : "-",
      m ? (m.userS + m.sysS).toFixed(2) : "-",
      m ? (m.maxRssKiB / 1024).toFixed(1) : "-",
      note,
    ];
  });
  return table(["round", "step", "tool", "status", "wall s", "cpu s", "max RSS MiB", "notes"], rows);
}

export function formatComparisons(cs: readonly Comparison[]): string {
  const rows = cs.map((c) => [
    c.step,
    c.metric,
    fmt(c.values.bulwark, c.metric),
    fmt(c.values.restic, c.metric),
    fmt(c.values.borg, c.metric),
    ratio(c.bulwarkVsRestic),
    ratio(c.bulwarkVsBorg),
    c.target === undefined ? "" : `<= ${c.target.toFixed(2)}`,
    c.met === undefined ? "" : c.met ? "yes" : "NO",
  ]);
  return table(["step", "metric", "bulwark", "restic", "borg", "b/restic", "b/borg", "target", "met"], rows);
}
