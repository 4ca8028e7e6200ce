import { execFile } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../test/support/process.ts";

/** One load run: what to hit, from which core, how hard and for how long. */
export interface LoadOptions {
  readonly url: string;
  /** The CPU core wrk is pinned to. */
  readonly core: number;
  /** Keep-alive connections held open for the whole run (fixed concurrency). */
  readonly connections: number;
  readonly seconds: number;
  /** When set, each request is a POST of this JSON body; otherwise a GET. */
  readonly postBody?: string;
}

/** What wrk measured in one run; latencies cover every completed request. */
export interface LoadResult {
  /** Responses completed within the run: the divisor of the CPU time per request. */
  readonly requests: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Socket errors, timeouts and answers with a status of 400 or more. */
  readonly errors: number;
}

// Everything about the requests and the report lives in the Lua script.
const script = join(repoRoot, "bench", "wrk-report.lua");

/**
 * Runs wrk with one thread on one core (closed loop: each connection sends its next request
 * when the previous answer has arrived) and reads the exact counts from the script's report.
 */
export function runWrk(options: LoadOptions): Promise<LoadResult> {
  const args = [
    "-c",
    String(options.core),
    "wrk",
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--timeout",
    "10s",
    "-s",
    script,
    options.url,
  ];
  const env = { ...process.env, BENCH_POST_BODY: options.postBody ?? "" };
  return new Promise((resolve, reject) => {
    execFile("taskset", args, { env }, (error, stdout, stderr) => {
      if (error !== null) {
        reject(new Error(`wrk failed on ${options.url}: ${error.message}\n${stderr}`));
        return;
      }
      const line = stdout.split("\n").find((l) => l.startsWith("BENCH "));
      if (line === undefined) {
        reject(new Error(`wrk printed no report for ${options.url}:\n${stdout}\n${stderr}`));
        return;
      }
      const report = JSON.parse(line.slice("BENCH ".length)) as Record<string, number>;
      const count = (key: string) => report[key] ?? 0;
      const seconds = count("durationUs") / 1e6;
      resolve({
        requests: count("requests"),
        seconds,
        rps: count("requests") / seconds,
        p50Ms: count("p50Us") / 1000,
        p99Ms: count("p99Us") / 1000,
        maxMs: count("maxUs") / 1000,
        errors: count("socketErrors") + count("statusErrors") + count("timeouts"),
      });
    });
  });
}
