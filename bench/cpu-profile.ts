import { readFileSync } from "node:fs";

/** The parts of a V8 .cpuprofile (written by `node --cpu-prof`) that a summary needs. */
interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
  }[];
  /** The node each sample was taken in, and the µs since the previous sample. */
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One row of a summary: a function or a code area and its share of the busy samples. */
export interface ProfileRow {
  readonly name: string;
  readonly percent: number;
}

/** Where the busy time of a profile went: by function (self time) and by area. */
export interface ProfileSummary {
  /** Samples taken while the process was not idle. */
  readonly busySamples: number;
  readonly functions: ProfileRow[];
  /** Node internals, each npm package, each project folder, GC and V8 itself. */
  readonly areas: ProfileRow[];
}

/**
 * Reads a .cpuprofile and ranks functions and areas by self time, idle time left out, and so
 * is the process's first `skipMs` (start-up: module loading and compilation).
 */
export function summarizeProfile(path: string, top: number, skipMs: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  const add = (counts: Map<string, number>, key: string) =>
    counts.set(key, (counts.get(key) ?? 0) + 1);
  let busy = 0;
  let elapsedUs = 0;
  profile.samples.forEach((id, i) => {
    elapsedUs += profile.timeDeltas[i] ?? 0;
    const frame = frames.get(id);
    if (elapsedUs < skipMs * 1000 || frame === undefined || frame.functionName === "(idle)") {
      return;
    }
    busy++;
    const where = shortUrl(frame.url);
    const at = where === "" ? "" : ` ${where}:${frame.lineNumber + 1}`;
    add(byFunction, `${frame.functionName || "(anonymous)"}${at}`);
    add(byArea, areaOf(frame.url, frame.functionName));
  });
  const rank = (counts: Map<string, number>) =>
    [...counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({ name, percent: (100 * hits) / Math.max(1, busy) }));
  return { busySamples: busy, functions: rank(byFunction), areas: rank(byArea) };
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf("/node_modules/");
  if (modules !== -1) return url.slice(modules + "/node_modules/".length);
  const dist = url.lastIndexOf("/dist/");
  if (dist !== -1) return url.slice(dist + "/dist/".length);
  return url;
}

// An npm package ("@scope/name" or "name"), a project folder ("gateway", "kit"), a Node
// internal module, or V8's own entries such as "(garbage collector)" and "(program)".
function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  if (url.startsWith("node:")) return "node internals";
  const path = shortUrl(url);
  if (path === url) return url;
  const parts = path.split("/");
  if (url.includes("/node_modules/")) {
    return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? path);
  }
  return `${parts[0]}/`;
}
