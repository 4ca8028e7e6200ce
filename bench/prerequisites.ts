import { accessSync, constants, existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { delimiter, join } from "node:path";

/** Where the programs the bench runs besides Node are; wrk and taskset are run from PATH. */
export interface Tools {
  /** Found when asked for. */
  readonly nginx?: string;
}

/** A program the chosen setups need besides taskset, which every setup does. */
export type Program = "nginx" | "wrk";

// Each program with the Debian package that installs it; nginx is often in an sbin directory
// outside a user's PATH.
const required = [
  { name: "nginx", debian: "nginx-light", extraDirs: ["/usr/sbin", "/sbin"] },
  { name: "wrk", debian: "wrk", extraDirs: [] },
  { name: "taskset", debian: "util-linux", extraDirs: [] },
] as const;

/**
 * Finds taskset and the programs asked for, and checks for Linux with at least two cores (one
 * for the load generator, one for the servers); throws one message that says what to install.
 */
export function checkPrerequisites(cores: readonly number[], programs: readonly Program[]): Tools {
  const problems: string[] = [];
  if (process.platform !== "linux" || !existsSync("/proc/self/stat")) {
    problems.push("the bench reads CPU time from /proc and pins processes: it runs on Linux only");
  }
  const highest = Math.max(...cores);
  if (availableParallelism() <= highest) {
    problems.push(
      `the bench pins processes to cores ${cores.join(" and ")}, but this machine has ` +
        `${availableParallelism()} core(s)`,
    );
  }
  const found: Record<string, string> = {};
  const missing: string[] = [];
  const packages: string[] = [];
  for (const { name, debian, extraDirs } of required) {
    if (name !== "taskset" && !programs.includes(name)) continue;
    const path = findExecutable(name, extraDirs);
    if (path !== undefined) {
      found[name] = path;
      continue;
    }
    missing.push(`${name} (Debian package ${debian})`);
    packages.push(debian);
  }
  if (missing.length > 0) {
    problems.push(
      `missing programs: ${missing.join(", ")}; on Debian or Ubuntu: ` +
        `sudo apt-get install ${packages.join(" ")}`,
    );
  }
  if (problems.length > 0) throw new Error(`npm run bench cannot run:\n  ${problems.join("\n  ")}`);
  return found.nginx === undefined ? {} : { nginx: found.nginx };
}

/** The first executable of that name on PATH or else in `extraDirs`. */
function findExecutable(name: string, extraDirs: readonly string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), ...extraDirs];
  for (const dir of dirs) {
    if (dir === "") continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // Not here; the next directory.
    }
  }
  return undefined;
}
