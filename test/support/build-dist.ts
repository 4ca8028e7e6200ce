import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";
import { repoRoot } from "./repo.ts";

declare module "vitest" {
  interface ProvidedContext {
    /** When this run compiled dist/ (ms since the epoch): the processes tests start are current. */
    distBuiltAt: number;
  }
}

/**
 * Global setup of the end-to-end project: compiles the sources to dist/ once per run, so the
 * processes the tests start run the code as it is in the checkout, never an older build.
 */
export async function setup(project: TestProject): Promise<void> {
  const startedAt = Date.now();
  const tsc = join(repoRoot, "node_modules", ".bin", "tsc");
  try {
    await promisify(execFile)(tsc, ["-p", "tsconfig.build.json"], { cwd: repoRoot });
  } catch (err) {
    const { stdout = "", stderr = "" } = err as { stdout?: string; stderr?: string };
    throw new Error(`compiling dist/ for the end-to-end tests failed:\n${stdout}${stderr}`);
  }
  project.provide("distBuiltAt", startedAt);
}
