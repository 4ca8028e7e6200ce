// npm run bench: the cost of the gateway's REST hop against a direct call, nginx and a minimal
// undici proxy; then a page of a large project's tasks on PostgreSQL, directly and through the
// gateway; then a large file up and down through the gateway to the file service's stores,
// against a bare Node.js server; all in one run on this machine. The servers share one core,
// the load comes from another; each process's CPU time comes from the kernel's accounting.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { loadConfigOrExit } from "../kit/config.ts";
import { coreBusyMicros, cpuMicros, cpuMicrosByPid, cpuMicrosUsed, pinToCore } from "./cpu.ts";
import { summarizeProfile } from "./cpu-profile.ts";
import { formatFileTable, formatFileVerdicts, formatTransfer } from "./file-report.ts";
import { runFileSuite } from "./file-setups.ts";
import { checkPrerequisites, type Program } from "./prerequisites.ts";
import {
  formatSample,
  formatTable,
  formatVerdicts,
  noiseOf,
  type Sample,
  summarize,
  verdicts,
} from "./report.ts";
import {
  type BenchProcesses,
  type LoadSuiteName,
  type Setup,
  type SetupName,
  type SetupOptions,
  type SuiteName,
  setupNames,
  startHopSetups,
  stopRunningSuites,
  suites,
} from "./setups.ts";
import { startTaskSetups } from "./task-setups.ts";
import { runWrk } from "./wrk.ts";

const count = (min: number) => z.coerce.number().int().min(min);
const benchConfigSchema = z.object({
  BENCH_ROUNDS: count(1).default(9),
  BENCH_SECONDS: count(1).default(5),
  BENCH_WARMUP_SECONDS: count(0).default(2),
  BENCH_START_WARMUP_SECONDS: count(0).default(10),
  BENCH_CONNECTIONS: count(1).default(32),
  BENCH_SETUPS: z
    .string()
    .default(setupNames.join(","))
    .transform((list) => list.split(",").map((name) => name.trim()))
    .pipe(z.array(z.enum(setupNames)).min(1)),
  BENCH_LOAD_CORE: count(0).default(0),
  BENCH_SERVER_CORE: count(0).default(1),
  BENCH_ATTEMPTS: count(1).default(4),
  BENCH_DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .default("postgres://postgres@127.0.0.1:5432/postgres"),
  BENCH_PROFILE_DIR: z.string().optional(),
  BENCH_FILE_BYTES: count(1).default(1024 ** 3),
});

const usage = `Settings (environment variables):
  BENCH_ROUNDS=9            measured phases per setup; setups take turns, medians are reported
  BENCH_SECONDS=5           length of a measured phase
  BENCH_WARMUP_SECONDS=2    unmeasured load before each measured phase
  BENCH_START_WARMUP_SECONDS=10
                            unmeasured load of each setup once, before the first round: a
                            process's first seconds compile its code and grow its heap
  BENCH_CONNECTIONS=32      wrk's keep-alive connections (fixed concurrency)
  BENCH_SETUPS=${setupNames.join(",")}
                            the setups to run: GetShelf four ways (the gateway's hop), then a
                            page of 50 of a project's 100,000 tasks on PostgreSQL, two ways,
                            then a file up and down three ways
  BENCH_LOAD_CORE=0         the core wrk runs on
  BENCH_SERVER_CORE=1       the core the services and every proxy run on
  BENCH_ATTEMPTS=4          tries of a noisy phase (other work took over 5% of the servers'
                            core, or the load core was over 50% busy); the quietest counts
  BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
                            the PostgreSQL server of the tasks setups: a user who may create
                            databases; the bench makes its own and drops them at the end
  BENCH_PROFILE_DIR=<dir>   run the gateway under --cpu-prof, write its profile there and
                            print its top functions (the profiler's cost is in the figures);
                            of the file suite's two gateways, the last one's
  BENCH_FILE_BYTES=1073741824
                            the size of the file of the file setups (1 GiB)`;

const config = loadConfigOrExit("bench", benchConfigSchema, usage);
const chosen = (suite: SuiteName) => suites[suite].some((n) => config.BENCH_SETUPS.includes(n));
// The file suite loads its setups itself; the others run wrk, and the nginx setup nginx.
const programs: Program[] = [
  ...(chosen("hop") || chosen("tasks") ? (["wrk"] as const) : []),
  ...(config.BENCH_SETUPS.includes("nginx") ? (["nginx"] as const) : []),
];
let tools: ReturnType<typeof checkPrerequisites>;
try {
  tools = checkPrerequisites([config.BENCH_LOAD_CORE, config.BENCH_SERVER_CORE], programs);
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
// Stopped early: stop the running suite (its databases are dropped), then exit; the exit hooks
// kill whatever server is left.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void stopRunningSuites().finally(() => process.exit(130)));
}
const starters: Record<LoadSuiteName, (options: SetupOptions) => Promise<BenchProcesses>> = {
  hop: startHopSetups,
  tasks: startTaskSetups,
};
const titles: Record<SuiteName, string> = {
  hop: "The gateway's REST hop: GetShelf four ways",
  tasks: "Listing tasks: 50 of a project's 100,000, on PostgreSQL",
  file: "Files: one up and down through a bare server and the file service's two stores",
};
let failed = false;
const counted: Sample[] = [];
for (const suite of Object.keys(suites) as SuiteName[]) {
  const names = suites[suite].filter((name) => config.BENCH_SETUPS.includes(name));
  if (names.length === 0) continue;
  console.log(`== ${titles[suite]}\n`);
  const earlierProfiles = profileDir === undefined ? new Set<string>() : profilesIn(profileDir);
  if (suite === "file") {
    await runFile(names);
  } else {
    const samples = await runSuite(suite, names);
    counted.push(...samples);
    // In the table, in the order of their letters, as the names sort: (a) direct … (d) undici.
    const summaries = summarize(samples, [...names].sort());
    console.log(`\nMedians of ${config.BENCH_ROUNDS} round(s):\n\n${formatTable(summaries)}\n`);
    const found = verdicts(samples);
    if (found.length > 0) console.log(`${formatVerdicts(found)}\n`);
  }
  if (profileDir !== undefined) printProfile(profileDir, earlierProfiles);
}
const noisy = counted.filter((s) => noiseOf(s) > 1).length;
if (noisy > 0) {
  console.log(`${noisy} of the phases counted were NOISY: rerun on a quieter machine.`);
}
if (failed) console.log("Some requests failed (see ERRORS above): the figures are not valid.");
process.exit(failed ? 1 : 0);

/** Where a suite's processes run and what they are given. */
function setupOptions(names: readonly SetupName[]): SetupOptions {
  return {
    names,
    core: config.BENCH_SERVER_CORE,
    connections: config.BENCH_CONNECTIONS,
    dir: scratch,
    ...(tools.nginx === undefined ? {} : { nginxBinary: tools.nginx }),
    databaseUrl: config.BENCH_DATABASE_URL,
    ...(profileDir === undefined
      ? {}
      : { gatewayNodeOptions: `--cpu-prof --cpu-prof-dir=${profileDir}` }),
  };
}

/** Sends the file through each chosen file setup and back, then prints the table and verdicts. */
async function runFile(names: readonly SetupName[]): Promise<void> {
  const measurements = await runFileSuite(
    {
      ...setupOptions(names),
      fileBytes: config.BENCH_FILE_BYTES,
      loadCore: config.BENCH_LOAD_CORE,
    },
    (measurement) => console.log(formatTransfer(measurement)),
  );
  console.log(`\n${formatFileTable(measurements)}\n`);
  const found = formatFileVerdicts(measurements);
  if (found !== "") console.log(`${found}\n`);
}

/**
 * Starts a suite's processes, measures its setups in turns, round after round, and stops the
 * processes again; the phase of each setup and round that counts.
 */
async function runSuite(suite: LoadSuiteName, names: readonly SetupName[]): Promise<Sample[]> {
  let processes: BenchProcesses | undefined;
  try {
    processes = await starters[suite](setupOptions(names));
    if (config.BENCH_START_WARMUP_SECONDS > 0) {
      for (const setup of processes.setups) {
        await runWrk({ ...loadOf(setup), seconds: config.BENCH_START_WARMUP_SECONDS });
      }
    }
    const samples: Sample[] = [];
    for (let round = 1; round <= config.BENCH_ROUNDS; round++) {
      for (const setup of processes.setups) {
        let sample = await measure(setup, processes, round);
        console.log(formatSample(sample));
        for (let attempt = 2; attempt <= config.BENCH_ATTEMPTS && noiseOf(sample) > 1; attempt++) {
          const again = await measure(setup, processes, round);
          console.log(formatSample(again));
          if (noiseOf(again) < noiseOf(sample)) sample = again;
        }
        if (sample.load.errors > 0) failed = true;
        samples.push(sample);
      }
    }
    return samples;
  } finally {
    await processes?.stop();
  }
}

/** How wrk loads a setup: from the load core, with the configured connections. */
function loadOf(setup: Setup) {
  return { ...setup, core: config.BENCH_LOAD_CORE, connections: config.BENCH_CONNECTIONS };
}

/** Warms a setup up, then loads it for the measured phase with CPU snapshots around it. */
async function measure(setup: Setup, processes: BenchProcesses, round: number): Promise<Sample> {
  const load = loadOf(setup);
  if (config.BENCH_WARMUP_SECONDS > 0) {
    await runWrk({ ...load, seconds: config.BENCH_WARMUP_SECONDS });
  }
  const snapshot = () => ({
    proxy: setup.proxyPid === undefined ? 0 : cpuMicros(setup.proxyPid),
    service: cpuMicros(processes.servicePid),
    serverCore: coreBusyMicros(config.BENCH_SERVER_CORE),
    loadCore: coreBusyMicros(config.BENCH_LOAD_CORE),
  });
  // The database's processes are asked for outside the window the other figures cover.
  const databaseCpu = async () => cpuMicrosByPid((await processes.databasePids?.()) ?? []);
  const databaseBefore = await databaseCpu();
  const before = snapshot();
  const result = await runWrk({ ...load, seconds: config.BENCH_SECONDS });
  const after = snapshot();
  const databaseAfter = await databaseCpu();
  const used = (key: keyof typeof before) => after[key] - before[key];
  const perRequest = (micros: number) => micros / Math.max(1, result.requests);
  const phase = result.seconds * 1e6;
  return {
    setup: setup.name,
    round,
    load: result,
    ...(setup.proxyPid === undefined ? {} : { proxyUs: perRequest(used("proxy")) }),
    serviceUs: perRequest(used("service")),
    ...(processes.databasePids === undefined
      ? {}
      : { databaseUs: perRequest(cpuMicrosUsed(databaseBefore, databaseAfter)) }),
    otherShare: Math.max(0, used("serverCore") - used("service") - used("proxy")) / phase,
    loadCoreBusy: used("loadCore") / phase,
  };
}

function printMachine(): void {
  const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  const versions = [process.version];
  if (tools.nginx !== undefined) {
    versions.push(spawnSync(tools.nginx, ["-v"], { encoding: "utf8" }).stderr.trim());
  }
  const loaded = programs.includes("wrk");
  if (loaded) {
    versions.push(
      spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim() ?? "",
    );
  }
  console.log(
    [
      `machine: ${cpus().length} cores, ${model ?? "unknown CPU"}, Linux ${release()}`,
      `node ${versions.join(", ")}`,
      ...(loaded
        ? [
            `wrk: 1 thread, ${config.BENCH_CONNECTIONS} keep-alive connections on core ` +
              `${config.BENCH_LOAD_CORE}; services and proxies on core ` +
              `${config.BENCH_SERVER_CORE}; PostgreSQL wherever the kernel runs it`,
            `first ${config.BENCH_START_WARMUP_SECONDS} s of warm-up per setup; then each ` +
              `round: ${config.BENCH_WARMUP_SECONDS} s warm-up, ${config.BENCH_SECONDS} s ` +
              `measured, per setup; ${config.BENCH_ROUNDS} round(s)`,
          ]
        : []),
      ...(chosen("file")
        ? [
            `files: ${config.BENCH_FILE_BYTES} bytes up and down once per setup, the client and ` +
              `the S3 server on core ${config.BENCH_LOAD_CORE}, the servers on core ` +
              `${config.BENCH_SERVER_CORE}`,
          ]
        : []),
      "",
    ].join("\n"),
  );
}

function profilesIn(dir: string): Set<string> {
  return new Set(readdirSync(dir).filter((name) => name.endsWith(".cpuprofile")));
}

/** Summarizes the gateway profile the suite just wrote (none of those there before it ran). */
function printProfile(dir: string, earlier: ReadonlySet<string>): void {
  const newest = [...profilesIn(dir)]
    .filter((name) => !earlier.has(name))
    .sort()
    .at(-1);
  if (newest === undefined) {
    console.log(`no .cpuprofile was written to ${dir}\n`);
    return;
  }
  // The first seconds are start-up and the answer checks, not the request path under load.
  const summary = summarizeProfile(join(dir, newest), 25, 3000);
  const rows = (list: { name: string; percent: number }[]) =>
    list.map((row) => `  ${row.percent.toFixed(1).padStart(5)}%  ${row.name}`).join("\n");
  console.log(
    `Gateway profile ${join(dir, newest)} (${summary.busySamples} busy samples after ` +
      "its first 3 s)\n" +
      `\nTop functions by self time:\n${rows(summary.functions)}\n` +
      `\nBy area:\n${rows(summary.areas)}\n`,
  );
}
