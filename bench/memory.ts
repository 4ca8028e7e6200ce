import { readFileSync } from "node:fs";

/** A process's resident memory now (VmRSS) and at its highest so far (VmHWM), in bytes. */
export interface Resident {
  readonly rss: number;
  readonly highWater: number;
}

/** Reads VmRSS and VmHWM from /proc/<pid>/status (proc(5): in kB). */
export function residentOf(pid: number): Resident {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kilobytes = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
    if (match === null) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]) * 1024;
  };
  return { rss: kilobytes("VmRSS"), highWater: kilobytes("VmHWM") };
}

/** The highest resident memory of each watched process while it was watched, in bytes. */
export interface PeakWatch {
  /** Stops watching; each process's peak, by process id, and how many samples were taken. */
  stop(): { readonly peaks: ReadonlyMap<number, number>; readonly samples: number };
  /** Stops watching without a result, as when the watched work failed. */
  cancel(): void;
}

/**
 * Watches processes' resident memory: VmRSS every `intervalMs`, and VmHWM at both ends. The
 * kernel's high-water mark cannot be reset, but when it rose while watched its new value is the
 * exact peak, even one that fell between two samples.
 */
export function watchPeaks(pids: readonly number[], intervalMs: number): PeakWatch {
  const highWaterBefore = new Map(pids.map((pid) => [pid, residentOf(pid).highWater]));
  const peaks = new Map(pids.map((pid) => [pid, residentOf(pid).rss]));
  let samples = 1;
  const sample = () => {
    for (const pid of pids) {
      peaks.set(pid, Math.max(peaks.get(pid) ?? 0, residentOf(pid).rss));
    }
    samples += 1;
  };
  const timer = setInterval(() => {
    try {
      sample();
    } catch {
      // A watched process has exited: the work it served fails and says why.
      clearInterval(timer);
    }
  }, intervalMs);
  return {
    cancel: () => clearInterval(timer),
    stop() {
      clearInterval(timer);
      sample();
      for (const pid of pids) {
        const { highWater } = residentOf(pid);
        if (highWater > (highWaterBefore.get(pid) ?? 0)) {
          peaks.set(pid, Math.max(peaks.get(pid) ?? 0, highWater));
        }
      }
      return { peaks, samples };
    },
  };
}
