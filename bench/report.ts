import { type SetupName, setupLabels, setupNames } from "./setups.ts";
import type { LoadResult } from "./wrk.ts";

/** One measured phase of one setup. */
export interface Sample {
  readonly setup: SetupName;
  readonly round: number;
  readonly load: LoadResult;
  /** The proxy's CPU time per request in µs; none for the direct call. */
  readonly proxyUs?: number;
  /** The service's CPU time per request in µs. */
  readonly serviceUs: number;
  /** The database server's CPU time per request in µs; none for a service without one. */
  readonly databaseUs?: number;
  /** The share of the phase the servers' core gave to other work (noise, ideally 0). */
  readonly otherShare: number;
  /** The share of the phase the load core was busy, wrk included. */
  readonly loadCoreBusy: number;
}

/** The medians of one setup's rounds, with the spread of the figures the targets use. */
export interface SetupSummary {
  readonly setup: SetupName;
  readonly rps: Spread;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly proxyUs?: Spread;
  readonly serviceUs: number;
  readonly databaseUs?: number;
}

/** A median and the lowest and highest value it was taken from. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** One of the gateway's targets, its measured value and whether it is met. */
export interface Verdict {
  readonly name: string;
  /** The median of the rounds' ratios, and the lowest and highest of them. */
  readonly value: Spread;
  readonly target: string;
  readonly pass: boolean;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[mid] ?? Number.NaN;
  return ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2;
}

function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

// Other work on the servers' core competes with the measured processes. The load core is
// allowed background work as long as wrk (about a tenth of it) never waits for it: a
// starved wrk sends a lighter load, and a lighter load costs more CPU per request.
const maxOtherShare = 0.05;
const maxLoadCoreBusy = 0.5;

/** How noisy a phase was: above 1 when a core was busier than the bench allows. */
export function noiseOf(sample: Sample): number {
  return Math.max(sample.otherShare / maxOtherShare, sample.loadCoreBusy / maxLoadCoreBusy);
}

/** The medians of each setup over its rounds, in the order given. */
export function summarize(samples: readonly Sample[], order: readonly SetupName[]) {
  const summaries: SetupSummary[] = [];
  for (const setup of order) {
    const own = samples.filter((s) => s.setup === setup);
    if (own.length === 0) continue;
    const proxy = own.flatMap((s) => (s.proxyUs === undefined ? [] : [s.proxyUs]));
    const database = own.flatMap((s) => (s.databaseUs === undefined ? [] : [s.databaseUs]));
    summaries.push({
      setup,
      rps: spread(own.map((s) => s.load.rps)),
      p50Ms: median(own.map((s) => s.load.p50Ms)),
      p99Ms: median(own.map((s) => s.load.p99Ms)),
      ...(proxy.length > 0 ? { proxyUs: spread(proxy) } : {}),
      serviceUs: median(own.map((s) => s.serviceUs)),
      ...(database.length > 0 ? { databaseUs: median(database) } : {}),
    });
  }
  return summaries;
}

const nameWidth = Math.max(...setupNames.map((name) => name.length));

/** One line per measured phase, printed as the run goes so that noise between rounds shows. */
export function formatSample(sample: Sample): string {
  const { load } = sample;
  const proxy = sample.proxyUs === undefined ? "" : `  proxy ${sample.proxyUs.toFixed(0)} µs/req`;
  const database =
    sample.databaseUs === undefined ? "" : `  database ${sample.databaseUs.toFixed(0)} µs/req`;
  const errors = load.errors > 0 ? `  ${load.errors} ERRORS` : "";
  // A noisy phase is measured again; of its tries, the quietest counts.
  const noisy = noiseOf(sample) > 1 ? "  NOISY" : "";
  // No request of this bench takes a second unless something waits for a timeout.
  const stalled = load.maxMs > 1000 ? `  STALLED (max ${load.maxMs.toFixed(0)} ms)` : "";
  return (
    `round ${sample.round}  ${sample.setup.padEnd(nameWidth)}` +
    `  ${load.rps.toFixed(0).padStart(6)} req/s` +
    `  p50 ${load.p50Ms.toFixed(2)} ms  p99 ${load.p99Ms.toFixed(2)} ms` +
    `${proxy}  service ${sample.serviceUs.toFixed(0)} µs/req${database}` +
    `  (${load.requests} requests;` +
    ` other work on the servers' core ${(100 * sample.otherShare).toFixed(1)}%,` +
    ` load core busy ${(100 * sample.loadCoreBusy).toFixed(0)}%)${errors}${stalled}${noisy}`
  );
}

/**
 * The summary as a Markdown table (it goes into BENCHMARKS.md as printed), with a column for
 * the database's CPU when a setup has a database.
 */
export function formatTable(summaries: readonly SetupSummary[]): string {
  const range = (s: Spread, digits: number) =>
    `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
  const withDatabase = summaries.some((s) => s.databaseUs !== undefined);
  const rows = summaries.map((s) => [
    setupLabels[s.setup],
    range(s.rps, 0),
    s.p50Ms.toFixed(2),
    s.p99Ms.toFixed(2),
    s.proxyUs === undefined ? "–" : range(s.proxyUs, 0),
    s.serviceUs.toFixed(0),
    ((s.proxyUs?.median ?? 0) + s.serviceUs).toFixed(0),
    ...(withDatabase ? [s.databaseUs?.toFixed(0) ?? "–"] : []),
  ]);
  const header = [
    "setup",
    "req/s (min–max)",
    "p50 ms",
    "p99 ms",
    "proxy CPU µs/req (min–max)",
    "service CPU µs/req",
    "server core µs/req",
    ...(withDatabase ? ["database CPU µs/req"] : []),
  ];
  return formatMarkdownTable(header, rows);
}

/**
 * A Markdown table padded as Biome formats Markdown: the first column left-aligned, the
 * figures right-aligned.
 */
export function formatMarkdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((r) => r[i]?.length ?? 0)));
  const pad = (cell: string, i: number) =>
    i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0);
  const line = (cells: readonly string[]) => `| ${cells.map(pad).join(" | ")} |`;
  const rule = widths.map((w, i) => (i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`));
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join("\n");
}

// The gateway's two targets: which figure of which two setups, and the bound of their ratio.
const targets = [
  {
    name: "gateway CPU / undici CPU",
    of: (s: Sample) => s.proxyUs,
    top: "gateway",
    bottom: "undici",
    target: "≤ 1.20",
    met: (ratio: number) => ratio <= 1.2,
  },
  {
    name: "gateway req/s / direct req/s",
    of: (s: Sample) => s.load.rps,
    top: "gateway",
    bottom: "direct",
    target: "≥ 0.50",
    met: (ratio: number) => ratio >= 0.5,
  },
] as const;

/**
 * The gateway's two targets: its CPU per request at most 1.2× the minimal undici
 * proxy's, and its throughput at least half the direct call's on a shared core. Each ratio is
 * taken within a round, between setups measured one after the other, so that the machine's
 * slow drift cancels out; the verdict is on the median of the rounds' ratios.
 */
export function verdicts(samples: readonly Sample[]): Verdict[] {
  const rounds = [...new Set(samples.map((s) => s.round))];
  const ratios = (of: (s: Sample) => number | undefined, top: SetupName, bottom: SetupName) =>
    rounds.flatMap((round) => {
      const find = (setup: SetupName) =>
        samples.find((s) => s.round === round && s.setup === setup);
      const a = find(top);
      const b = find(bottom);
      const x = a === undefined ? undefined : of(a);
      const y = b === undefined ? undefined : of(b);
      return x === undefined || y === undefined ? [] : [x / y];
    });
  return targets.flatMap((t) => {
    const found = ratios(t.of, t.top, t.bottom);
    if (found.length === 0) return [];
    const value = spread(found);
    return [{ name: t.name, value, target: t.target, pass: t.met(value.median) }];
  });
}

/** The verdicts as lines: value, target and PASS or MISS. */
export function formatVerdicts(list: readonly Verdict[]): string {
  return list
    .map(
      (v) =>
        `${v.name.padEnd(30)} ${v.value.median.toFixed(2)} (rounds ${v.value.min.toFixed(2)}–` +
        `${v.value.max.toFixed(2)})  target ${v.target}  ${v.pass ? "PASS" : "MISS"}`,
    )
    .join("\n");
}
