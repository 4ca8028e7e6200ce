import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { nodeBinary, repoRoot } from "../test/support/repo.ts";
import { startNginx } from "./nginx.ts";
import { type PinnedProcess, startPinned } from "./processes.ts";
import { fetchOnce, type LoadRequest } from "./wrk.ts";

/**
 * The bench's setups by suite, each suite's in the order a round runs them. The hop suite makes
 * the same GetShelf call four ways, with the gateway between the two setups its targets compare
 * it with; the tasks suite lists a page of a large project's tasks directly and through the
 * gateway; the file suite uploads and downloads one large file through a bare Node.js server
 * and through the gateway to the file service's two stores.
 */
export const suites = {
  hop: ["direct", "gateway", "undici", "nginx"],
  tasks: ["tasks-direct", "tasks-gateway"],
  file: ["file-baseline", "file-local", "file-s3"],
} as const;
/** One of the bench's suites: a set of setups that share their processes. */
export type SuiteName = keyof typeof suites;
/** A suite that wrk loads with one request over and over. */
export type LoadSuiteName = Exclude<SuiteName, "file">;
/** Every setup of every suite, in the order the bench runs them. */
export const setupNames = [...suites.hop, ...suites.tasks, ...suites.file] as const;
/** One of the bench's setups. */
export type SetupName = (typeof setupNames)[number];

/** What each setup is, as the report names it. */
export const setupLabels: Readonly<Record<SetupName, string>> = {
  direct: "(a) direct: Connect JSON to the service",
  gateway: "(b) REST through the gateway",
  nginx: "(c) REST through nginx",
  undici: "(d) REST through minimal undici proxy",
  "tasks-direct": "(a) direct: Connect JSON to the task service",
  "tasks-gateway": "(b) REST through the gateway",
  "file-baseline": "(a) bare node:http server to a file",
  "file-local": "(b) gateway and file service, local store",
  "file-s3": "(c) gateway and file service, S3 store (s3rver)",
};

/** A setup ready to be loaded: what wrk sends it, and which process proxies the requests. */
export interface Setup extends LoadRequest {
  readonly name: SetupName;
  /** The proxy's process id; none for the direct call. */
  readonly proxyPid?: number;
}

/** The processes of a suite: the service and the proxies of the chosen setups. */
export interface BenchProcesses {
  readonly setups: Setup[];
  readonly servicePid: number;
  /** The database server's processes that serve the service now, when it has a database. */
  databasePids?(): Promise<number[]>;
  /** Stops every process (SIGTERM, so a profiled gateway writes its profile) and waits. */
  stop(): Promise<void>;
}

/** Where the bench's processes run and what they are given. */
export interface SetupOptions {
  /** The chosen setups of the suite being started. */
  readonly names: readonly SetupName[];
  /** The core every server process is pinned to. */
  readonly core: number;
  /** Upstream keep-alive connections of nginx and the undici proxy: wrk's connection count. */
  readonly connections: number;
  /** A scratch directory (nginx's configuration and temp paths, the services' data). */
  readonly dir: string;
  /** nginx, found when the nginx setup is chosen. */
  readonly nginxBinary?: string;
  /** The PostgreSQL server the tasks suite makes its scratch databases on. */
  readonly databaseUrl: string;
  /** Node options of the gateway process only, such as --cpu-prof. */
  readonly gatewayNodeOptions?: string;
}

/** What a suite's start function is given to start its processes with. */
export interface SuiteContext {
  /** Runs a built entry (`dist/<entry>`) on the servers' core, logging warnings only. */
  pinned(entry: string, env: Readonly<Record<string, string>>): Promise<PinnedProcess>;
  /** Adds a clean-up to the suite's stop; they run in the reverse order of their adding. */
  atStop(cleanUp: () => Promise<unknown>): void;
}

// The stops of the suites started and not yet stopped.
const running = new Set<() => Promise<void>>();

/** Stops every suite still running, its clean-ups included: for a bench stopped by a signal. */
export async function stopRunningSuites(): Promise<void> {
  for (const stop of running) await stop();
}

/** Starts a suite's processes with `start`, and stops those already started if it throws. */
export async function startSuite<Started>(
  options: SetupOptions,
  start: (context: SuiteContext) => Promise<Started>,
): Promise<Started & { stop(): Promise<void> }> {
  const stops: (() => Promise<unknown>)[] = [];
  let stopped: Promise<void> | undefined;
  // Once only, whoever asks first: the run, its error path or a signal.
  const stop = () => {
    stopped ??= (async () => {
      for (const s of [...stops].reverse()) await s();
      running.delete(stop);
    })();
    return stopped;
  };
  running.add(stop);
  const context: SuiteContext = {
    async pinned(entry, env) {
      const started = await startPinned({
        name: entry,
        core: options.core,
        command: () => [nodeBinary(), join(repoRoot, "dist", entry)],
        // Log lines would be measured too: only warnings and errors are written.
        env: { HOST: "127.0.0.1", LOG_LEVEL: "warn", LOG_FORMAT: "json", ...env },
      });
      stops.push(() => started.stop());
      return started;
    },
    atStop: (cleanUp) => stops.push(cleanUp),
  };
  try {
    return { ...(await start(context)), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** What every gateway the bench starts runs with, besides where its services are. */
export function gatewayEnv(options: SetupOptions): Record<string, string> {
  return {
    // The limiter stays in the path with a limit the bench never reaches.
    RATE_LIMITS: "default=1000000000/1s",
    ...(options.gatewayNodeOptions ? { NODE_OPTIONS: options.gatewayNodeOptions } : {}),
  };
}

const shelfId = "abc";
const getShelfPath = "/protomesh.gatewaytest.v1.LibraryService/GetShelf";
const expectedAnswer = { id: shelfId, theme: "poetry" };

/**
 * Starts the library service and, for each chosen setup of the hop suite, its proxy, all pinned
 * to one core, and checks that every setup gives the same answer before any load is measured.
 */
export function startHopSetups(options: SetupOptions): Promise<BenchProcesses> {
  return startSuite(options, async (context) => {
    const service = await context.pinned("gateway/testdata/library-server.js", {});
    const setups: Setup[] = [];
    for (const name of options.names) {
      setups.push(await startSetup(name, service, options, context));
    }
    for (const setup of setups) await checkAnswer(setup);
    return { setups, servicePid: service.pid };
  });
}

async function startSetup(
  name: SetupName,
  service: PinnedProcess,
  options: SetupOptions,
  { pinned, atStop }: SuiteContext,
): Promise<Setup> {
  const rest = `/v1/shelves/${shelfId}`;
  switch (name) {
    case "direct":
      return {
        name,
        url: service.url + getShelfPath,
        postBody: JSON.stringify({ shelfId }),
      };
    case "gateway": {
      const gateway = await pinned("gateway/testdata/library-gateway.js", {
        LIBRARY_SERVICE_URL: service.url,
        ...gatewayEnv(options),
      });
      return { name, url: gateway.url + rest, proxyPid: gateway.pid };
    }
    case "nginx": {
      if (options.nginxBinary === undefined) throw new Error("the nginx setup needs nginx");
      const nginx = await startNginx({
        binary: options.nginxBinary,
        dir: options.dir,
        upstreamPort: service.port,
        keepalive: options.connections,
        core: options.core,
      });
      atStop(() => nginx.stop());
      return { name, url: nginx.url + rest, proxyPid: nginx.pid };
    }
    case "undici": {
      const proxy = await pinned("bench/undici-proxy.js", {
        UPSTREAM_URL: service.url,
        UPSTREAM_CONNECTIONS: String(options.connections),
      });
      return { name, url: proxy.url + rest, proxyPid: proxy.pid };
    }
    default:
      throw new Error(`${name} is not a setup of the hop suite`);
  }
}

/** Fails unless the setup answers GetShelf's JSON: a bench of error answers measures nothing. */
async function checkAnswer(setup: Setup): Promise<void> {
  const answer = await fetchOnce(setup);
  if (answer.status !== 200 || !isDeepStrictEqual(answer.body, expectedAnswer)) {
    throw new Error(
      `${setupLabels[setup.name]} answered HTTP ${answer.status} ${answer.text}; ` +
        `expected ${JSON.stringify(expectedAnswer)}`,
    );
  }
}
