import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let userHz: number | undefined;

/** The unit of the times in /proc (USER_HZ): 100 on every common Linux, asked of getconf. */
function ticksPerSecond(): number {
  if (userHz !== undefined) return userHz;
  try {
    userHz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    userHz = 100;
  }
  return userHz;
}

/**
 * CPU time a process has used so far, user plus system, in microseconds, from the kernel's
 * accounting in /proc/<pid>/stat: every thread of the process counts, whatever it does.
 */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // proc(5): the command name (field 2) is in parentheses and may hold spaces, so fields are
  // counted from the last ")"; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / ticksPerSecond();
}

/** cpuMicros of each of some processes, by process id, leaving out those that have exited. */
export function cpuMicrosByPid(pids: readonly number[]): Map<number, number> {
  const found = new Map<number, number>();
  for (const pid of pids) {
    try {
      found.set(pid, cpuMicros(pid));
    } catch {
      // Exited since its id was read.
    }
  }
  return found;
}

/**
 * The CPU time processes used between two cpuMicrosByPid readings: a process that started in
 * between counts from zero; one that exited in between is missed.
 */
export function cpuMicrosUsed(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
): number {
  let used = 0;
  for (const [pid, micros] of after) used += micros - (before.get(pid) ?? 0);
  return used;
}

/**
 * Time one core has spent running tasks (user, nice and system, without interrupts and
 * softirqs) or taken by the hypervisor (steal), in microseconds, from /proc/stat. Less the CPU
 * time of the processes pinned to it, what remains went to other work that shared the core.
 */
export function coreBusyMicros(core: number): number {
  const line = readFileSync("/proc/stat", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`cpu${core} `));
  if (line === undefined) throw new Error(`/proc/stat has no line for core ${core}`);
  // proc(5): user nice system idle iowait irq softirq steal …
  const [user, nice, system, , , , , steal] = line.split(/\s+/).slice(1, 9).map(Number);
  const ticks = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (steal ?? 0);
  return (ticks * 1e6) / ticksPerSecond();
}

/** Pins every thread of a running process to one CPU core; threads it starts later inherit it. */
export function pinToCore(pid: number, core: number): void {
  execFileSync("taskset", ["-a", "-c", "-p", String(core), String(pid)], { stdio: "ignore" });
}
