// npm run bench: the cost of the gateway's REST hop against a direct call, nginx and a minimal
// undici proxy, all in one run on this machine. The servers share one core, wrk loads them
// from another; each proxy's CPU time per request comes from the kernel's accounting.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { loadConfigOrExit } from "../kit/config.ts";
import { coreBusyMicros, cpuMicros, pinToCore } from "./cpu.ts";
import { summarizeProfile } from "./cpu-profile.ts";
import { checkPrerequisites } from "./prerequisites.ts";
import {
  formatSample,
  formatTable,
  formatVerdicts,
  noiseOf,
  type Sample,
  summarize,
  verdicts,
} from "./report.ts";
import { type BenchProcesses, type Setup, setupNames, startSetups } from "./setups.ts";
import { runWrk } from "./wrk.ts";

const count = (min: number) => z.coerce.number().int().min(min);
const benchConfigSchema = z.object({
  BENCH_ROUNDS: count(1).default(5),
  BENCH_SECONDS: count(1).default(8),
  BENCH_WARMUP_SECONDS: count(0).default(3),
  BENCH_CONNECTIONS: count(1).default(32),
  BENCH_SETUPS: z
    .string()
    .default(setupNames.join(","))
    .transform((list) => list.split(",").map((name) => name.trim()))
    .pipe(z.array(z.enum(setupNames)).min(1)),
  BENCH_LOAD_CORE: count(0).default(0),
  BENCH_SERVER_CORE: count(0).default(1),
  BENCH_ATTEMPTS: count(1).default(4),
  BENCH_PROFILE_DIR: z.string().optional(),
});

const usage = `Settings (environment variables):
  BENCH_ROUNDS=5            measured phases per setup; setups take turns, medians are reported
  BENCH_SECONDS=8           length of a measured phase
  BENCH_WARMUP_SECONDS=3    unmeasured load before each measured phase
  BENCH_CONNECTIONS=32      wrk's keep-alive connections (fixed concurrency)
  BENCH_SETUPS=${setupNames.join(",")}
  BENCH_LOAD_CORE=0         the core wrk runs on
  BENCH_SERVER_CORE=1       the core the service and every proxy run on
  BENCH_ATTEMPTS=4          tries of a noisy phase (other work took over 5% of the servers'
                            core, or the load core was over 50% busy); the quietest counts
  BENCH_PROFILE_DIR=<dir>   run the gateway under --cpu-prof, write its profile there and
                            print its top functions (the profiler's cost is in the figures)`;

const config = loadConfigOrExit("bench", benchConfigSchema, usage);
let tools: ReturnType<typeof checkPrerequisites>;
try {
  tools = checkPrerequisites([config.BENCH_LOAD_CORE, config.BENCH_SERVER_CORE]);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
if (config.BENCH_LOAD_CORE === config.BENCH_SERVER_CORE) {
  process.stderr.write("bench: BENCH_LOAD_CORE and BENCH_SERVER_CORE must differ\n");
  process.exit(2);
}

// This process only waits while wrk runs; it stays off the servers' core all the same.
pinToCore(process.pid, config.BENCH_LOAD_CORE);
printMachine();

const profileDir =
  config.BENCH_PROFILE_DIR === undefined ? undefined : resolve(config.BENCH_PROFILE_DIR);
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), "protomesh-bench-"));
process.once("exit", () => rmSync(scratch, { recursive: true, force: true }));
// Stopped early: exit, so that the exit hooks stop every server the bench started.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
let processes: BenchProcesses | undefined;
let failed = false;
try {
  processes = await startSetups({
    names: config.BENCH_SETUPS,
    core: config.BENCH_SERVER_CORE,
    connections: config.BENCH_CONNECTIONS,
    dir: scratch,
    nginxBinary: tools.nginx,
    ...(profileDir === undefined
      ? {}
      : { gatewayNodeOptions: `--cpu-prof --cpu-prof-dir=${profileDir}` }),
  });
  const samples: Sample[] = [];
  for (let round = 1; round <= config.BENCH_ROUNDS; round++) {
    for (const setup of processes.setups) {
      let sample = await measure(setup, processes.servicePid, round);
      console.log(formatSample(sample));
      for (let attempt = 2; attempt <= config.BENCH_ATTEMPTS && noiseOf(sample) > 1; attempt++) {
        const again = await measure(setup, processes.servicePid, round);
        console.log(formatSample(again));
        if (noiseOf(again) < noiseOf(sample)) sample = again;
      }
      if (sample.load.errors > 0) failed = true;
      samples.push(sample);
    }
  }
  // In the table, in the order of their letters: (a) direct … (d) undici.
  const summaries = summarize(samples, [...config.BENCH_SETUPS].sort());
  console.log(`\nMedians of ${config.BENCH_ROUNDS} round(s):\n\n${formatTable(summaries)}\n`);
  console.log(formatVerdicts(verdicts(samples)));
  const noisy = samples.filter((s) => noiseOf(s) > 1).length;
  if (noisy > 0) {
    console.log(`\n${noisy} of the phases counted were NOISY: rerun on a quieter machine.`);
  }
  if (failed) console.log("\nSome requests failed (see ERRORS above): the figures are not valid.");
} finally {
  await processes?.stop();
}
if (profileDir !== undefined) printProfile(profileDir);
process.exit(failed ? 1 : 0);

/** Warms a setup up, then loads it for the measured phase with CPU snapshots around it. */
async function measure(setup: Setup, servicePid: number, round: number): Promise<Sample> {
  const load = {
    url: setup.url,
    core: config.BENCH_LOAD_CORE,
    connections: config.BENCH_CONNECTIONS,
    ...(setup.postBody === undefined ? {} : { postBody: setup.postBody }),
  };
  if (config.BENCH_WARMUP_SECONDS > 0) {
    await runWrk({ ...load, seconds: config.BENCH_WARMUP_SECONDS });
  }
  const snapshot = () => ({
    proxy: setup.proxyPid === undefined ? 0 : cpuMicros(setup.proxyPid),
    service: cpuMicros(servicePid),
    serverCore: coreBusyMicros(config.BENCH_SERVER_CORE),
    loadCore: coreBusyMicros(config.BENCH_LOAD_CORE),
  });
  const before = snapshot();
  const result = await runWrk({ ...load, seconds: config.BENCH_SECONDS });
  const after = snapshot();
  const used = (key: keyof typeof before) => after[key] - before[key];
  const perRequest = (micros: number) => micros / Math.max(1, result.requests);
  const phase = result.seconds * 1e6;
  return {
    setup: setup.name,
    round,
    load: result,
    ...(setup.proxyPid === undefined ? {} : { proxyUs: perRequest(used("proxy")) }),
    serviceUs: perRequest(used("service")),
    otherShare: Math.max(0, used("serverCore") - used("service") - used("proxy")) / phase,
    loadCoreBusy: used("loadCore") / phase,
  };
}

function printMachine(): void {
  const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const nginx = spawnSync(tools.nginx, ["-v"], { encoding: "utf8" }).stderr.trim();
  const wrk = spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim();
  console.log(
    [
      `machine: ${cpus().length} cores, ${model ?? "unknown CPU"}, Linux ${release()}`,
      `node ${process.version}, ${nginx}, ${wrk}`,
      `wrk: 1 thread, ${config.BENCH_CONNECTIONS} keep-alive connections on core ` +
        `${config.BENCH_LOAD_CORE}; service and proxies on core ${config.BENCH_SERVER_CORE}`,
      `each round: ${config.BENCH_WARMUP_SECONDS} s warm-up, ${config.BENCH_SECONDS} s measured, ` +
        `per setup; ${config.BENCH_ROUNDS} round(s)`,
      "",
    ].join("\n"),
  );
}

function printProfile(dir: string): void {
  const newest = readdirSync(dir)
    .filter((name) => name.endsWith(".cpuprofile"))
    .sort()
    .at(-1);
  if (newest === undefined) {
    console.log(`\nno .cpuprofile was written to ${dir}`);
    return;
  }
  // The first seconds are start-up and the answer checks, not the request path under load.
  const summary = summarizeProfile(join(dir, newest), 25, 3000);
  const rows = (list: { name: string; percent: number }[]) =>
    list.map((row) => `  ${row.percent.toFixed(1).padStart(5)}%  ${row.name}`).join("\n");
  console.log(
    `\nGateway profile ${join(dir, newest)} (${summary.busySamples} busy samples after ` +
      "its first 3 s)\n" +
      `\nTop functions by self time:\n${rows(summary.functions)}\n` +
      `\nBy area:\n${rows(summary.areas)}`,
  );
}
