import type { FileMeasurement, Role } from "./file-setups.ts";
import { formatMarkdownTable } from "./report.ts";
import { setupLabels } from "./setups.ts";

const MiB = 1024 * 1024;
const roleNames: Record<Role, string> = {
  gateway: "gateway",
  file: "file service",
  s3: "S3 server",
  baseline: "baseline server",
};
const roles = Object.keys(roleNames) as Role[];

// The file service's targets: the share of the baseline's throughput a transfer through the
// gateway keeps, and the memory the gateway and the file service may add, whatever the size.
const minThroughputRatio = 0.7;
const maxExtraRss = 64 * MiB;
const boundedRoles = ["gateway", "file"] as const;

/** One line per transfer, printed as the run goes. */
export function formatTransfer(m: FileMeasurement): string {
  const memory = roles.flatMap((role) => {
    const extra = m.extraRss[role];
    return extra === undefined ? [] : [`${roleNames[role]} +${(extra / MiB).toFixed(1)} MiB`];
  });
  const cpu = roles.flatMap((role) => {
    const seconds = m.cpuSeconds[role];
    return seconds === undefined ? [] : [`${roleNames[role]} ${seconds.toFixed(2)} s`];
  });
  return (
    `${m.setup} ${m.direction.padEnd(8)} ${m.bytes} bytes in ${m.seconds.toFixed(2)} s: ` +
    `${m.mbPerSecond.toFixed(1)} MB/s; peak RSS above idle: ${memory.join(", ")} ` +
    `(${m.samples} samples); CPU: ${cpu.join(", ")}; ` +
    `other work on the servers' core ${(100 * m.otherShare).toFixed(1)}%`
  );
}

/** The baseline's throughput in the same direction, when the baseline ran. */
function baselineOf(all: readonly FileMeasurement[], m: FileMeasurement): number | undefined {
  return all.find((b) => b.setup === "file-baseline" && b.direction === m.direction)?.mbPerSecond;
}

/** The transfers as a Markdown table (it goes into BENCHMARKS.md as printed). */
export function formatFileTable(all: readonly FileMeasurement[]): string {
  const header = [
    "setup",
    "direction",
    "MB/s",
    "× baseline",
    ...roles.map((role) => `${roleNames[role]} +RSS MiB`),
    "servers' core CPU s",
  ];
  const rows = all.map((m) => {
    const baseline = baselineOf(all, m);
    const serversCore = roles
      .filter((role) => role !== "s3")
      .reduce((sum, role) => sum + (m.cpuSeconds[role] ?? 0), 0);
    return [
      setupLabels[m.setup],
      m.direction,
      m.mbPerSecond.toFixed(1),
      baseline === undefined ? "–" : (m.mbPerSecond / baseline).toFixed(2),
      ...roles.map((role) => {
        const extra = m.extraRss[role];
        return extra === undefined ? "–" : (extra / MiB).toFixed(1);
      }),
      serversCore.toFixed(2),
    ];
  });
  return formatMarkdownTable(header, rows);
}

/**
 * The file service's targets, one line each for every transfer through the gateway: at least
 * 70% of the baseline's throughput in the same direction, and under 64 MiB of peak resident
 * memory above idle in the gateway and in the file service.
 */
export function formatFileVerdicts(all: readonly FileMeasurement[]): string {
  const lines: [string, string, string, boolean][] = [];
  for (const m of all) {
    if (m.setup === "file-baseline") continue;
    const baseline = baselineOf(all, m);
    if (baseline !== undefined) {
      const ratio = m.mbPerSecond / baseline;
      lines.push([
        `${m.setup} ${m.direction} MB/s / baseline MB/s`,
        ratio.toFixed(2),
        `≥ ${minThroughputRatio.toFixed(2)}`,
        ratio >= minThroughputRatio,
      ]);
    }
    for (const role of boundedRoles) {
      const extra = m.extraRss[role] ?? 0;
      lines.push([
        `${m.setup} ${m.direction} ${roleNames[role]} RSS above idle`,
        `${(extra / MiB).toFixed(1)} MiB`,
        `< ${maxExtraRss / MiB} MiB`,
        extra < maxExtraRss,
      ]);
    }
  }
  const width = Math.max(0, ...lines.map(([name]) => name.length));
  return lines
    .map(
      ([name, value, target, pass]) =>
        `${name.padEnd(width)}  ${value}  target ${target}  ${pass ? "PASS" : "MISS"}`,
    )
    .join("\n");
}
