import { execFile } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../test/support/repo.ts";

/** The request a setup is loaded with: wrk sends it over and over, fetch once to check it. */
export interface LoadRequest {
  readonly url: string;
  /** When set, each request is a POST of this JSON body; otherwise a GET. */
  readonly postBody?: string;
  /** Headers on every request, such as an authorization. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** One load run: what to send, from which core, how hard and for how long. */
export interface LoadOptions extends LoadRequest {
  /** The CPU core wrk is pinned to. */
  readonly core: number;
  /** Keep-alive connections held open for the whole run (fixed concurrency). */
  readonly connections: number;
  readonly seconds: number;
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

/** A setup's answer to its load request, sent once. */
export interface Answer {
  readonly status: number;
  readonly text: string;
  /** The body parsed as JSON; the text when it is not JSON. */
  readonly body: unknown;
}

/** Every header of the request: a JSON body's content type, then the request's own. */
function headersOf(request: LoadRequest): Record<string, string> {
  return {
    ...(request.postBody === undefined ? {} : { "content-type": "application/json" }),
    ...request.headers,
  };
}

/** Sends the request wrk would send, once, so that a setup's answer is checked before load. */
export async function fetchOnce(request: LoadRequest): Promise<Answer> {
  const res = await fetch(request.url, {
    headers: headersOf(request),
    ...(request.postBody === undefined ? {} : { method: "POST", body: request.postBody }),
  });
  const text = await res.text();
  try {
    return { status: res.status, text, body: JSON.parse(text) };
  } catch {
    return { status: res.status, text, body: text };
  }
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
  const headers = Object.entries(headersOf(options)).map(([name, value]) => `${name}: ${value}`);
  const env = {
    ...process.env,
    BENCH_POST_BODY: options.postBody ?? "",
    BENCH_HEADERS: headers.join("\n"),
  };
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
