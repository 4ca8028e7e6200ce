import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { nodeBinary, repoRoot } from "../test/support/process.ts";
import { startNginx } from "./nginx.ts";
import { type PinnedProcess, startPinned } from "./processes.ts";

/**
 * The four ways the bench makes the same GetShelf call, in the order a round runs them: the
 * gateway between the two setups the targets compare it with.
 */
export const setupNames = ["direct", "gateway", "undici", "nginx"] as const;
/** One of the bench's setups. */
export type SetupName = (typeof setupNames)[number];

/** What each setup is, as the report names it. */
export const setupLabels: Readonly<Record<SetupName, string>> = {
  direct: "(a) direct: Connect JSON to the service",
  gateway: "(b) REST through the gateway",
  nginx: "(c) REST through nginx",
  undici: "(d) REST through minimal undici proxy",
};

/** A setup ready to be loaded: where wrk sends its requests and which process proxies them. */
export interface Setup {
  readonly name: SetupName;
  readonly url: string;
  /** The Connect JSON body for the direct call; REST calls are GETs without a body. */
  readonly postBody?: string;
  /** The proxy's process id; none for the direct call. */
  readonly proxyPid?: number;
}

/** The processes of a bench run: the service and the proxies of the chosen setups. */
export interface BenchProcesses {
  readonly setups: Setup[];
  readonly servicePid: number;
  /** Stops every process (SIGTERM, so a profiled gateway writes its profile) and waits. */
  stop(): Promise<void>;
}

/** Where the bench's processes run and what they are given. */
export interface SetupOptions {
  readonly names: readonly SetupName[];
  /** The core every server process is pinned to. */
  readonly core: number;
  /** Upstream keep-alive connections of nginx and the undici proxy: wrk's connection count. */
  readonly connections: number;
  /** A scratch directory (nginx's configuration and temp paths). */
  readonly dir: string;
  readonly nginxBinary: string;
  /** Node options of the gateway process only, such as --cpu-prof. */
  readonly gatewayNodeOptions?: string;
}

const shelfId = "abc";
const getShelfPath = "/protomesh.gatewaytest.v1.LibraryService/GetShelf";
const expectedAnswer = { id: shelfId, theme: "poetry" };

/**
 * Starts the library service and, for each chosen setup, its proxy, all pinned to one core,
 * and checks that every setup gives the same answer before any load is measured.
 */
export async function startSetups(options: SetupOptions): Promise<BenchProcesses> {
  const stops: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of [...stops].reverse()) await s();
  };
  const pinned = async (entry: string, env: Record<string, string>): Promise<PinnedProcess> => {
    const started = await startPinned({
      name: entry,
      core: options.core,
      command: () => [nodeBinary(), join(repoRoot, "dist", entry)],
      // Log lines would be measured too: only warnings and errors are written.
      env: { HOST: "127.0.0.1", LOG_LEVEL: "warn", LOG_FORMAT: "json", ...env },
    });
    stops.push(() => started.stop());
    return started;
  };

  try {
    const service = await pinned("gateway/testdata/library-server.js", {});
    const setups: Setup[] = [];
    for (const name of options.names) {
      setups.push(await startSetup(name, service, options, pinned, stops));
    }
    for (const setup of setups) await checkAnswer(setup);
    return { setups, servicePid: service.pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startSetup(
  name: SetupName,
  service: PinnedProcess,
  options: SetupOptions,
  pinned: (entry: string, env: Record<string, string>) => Promise<PinnedProcess>,
  stops: (() => Promise<unknown>)[],
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
        // The limiter stays in the path with a limit the bench never reaches.
        RATE_LIMITS: "default=1000000000/1s",
        ...(options.gatewayNodeOptions ? { NODE_OPTIONS: options.gatewayNodeOptions } : {}),
      });
      return { name, url: gateway.url + rest, proxyPid: gateway.pid };
    }
    case "nginx": {
      const nginx = await startNginx({
        binary: options.nginxBinary,
        dir: options.dir,
        upstreamPort: service.port,
        keepalive: options.connections,
        core: options.core,
      });
      stops.push(() => nginx.stop());
      return { name, url: nginx.url + rest, proxyPid: nginx.pid };
    }
    case "undici": {
      const proxy = await pinned("bench/undici-proxy.js", {
        UPSTREAM_URL: service.url,
        UPSTREAM_CONNECTIONS: String(options.connections),
      });
      return { name, url: proxy.url + rest, proxyPid: proxy.pid };
    }
  }
}

/** Fails unless the setup answers GetShelf's JSON: a bench of error answers measures nothing. */
async function checkAnswer(setup: Setup): Promise<void> {
  const res = await fetch(
    setup.url,
    setup.postBody === undefined
      ? {}
      : { method: "POST", headers: { "content-type": "application/json" }, body: setup.postBody },
  );
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  if (res.status !== 200 || !isDeepStrictEqual(body, expectedAnswer)) {
    throw new Error(
      `${setupLabels[setup.name]} answered HTTP ${res.status} ${text}; ` +
        `expected ${JSON.stringify(expectedAnswer)}`,
    );
  }
}
