// Consul HTTP API test double. Consul cannot be installed on the machines these tests run on
// (no Debian or npm package, and not under an open-source licence), so kit/registry's Consul
// adapter is tested against this in-process server. It implements the part of the agent API
// the adapter uses, as Consul documents it:
//   PUT /v1/agent/service/register             a service with one check (HTTP checks are run)
//   PUT /v1/agent/service/deregister/<id>
//   GET /v1/health/service/<name>?passing      with blocking queries: index, wait, X-Consul-Index
// It is not Consul: one node, one index for everything, checks run at once and then every
// Interval, DeregisterCriticalServiceAfter is recorded but not enforced. The same contract
// runs against a real agent in kit/registry/consul-agent.test.ts when CONSUL_HTTP_ADDR is set.
import { EventEmitter, once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** One request the double received, in arrival order. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** The parsed JSON body, if any. */
  readonly body: unknown;
  readonly headers: http.IncomingHttpHeaders;
  /** performance.now() when it arrived. */
  readonly at: number;
  /** True once the double has answered it; false for a request the client gave up on. */
  answered: boolean;
}

/** A registered service, as the register body gave it, and its check's status. */
export interface RegisteredService {
  readonly body: Record<string, unknown>;
  status: "passing" | "critical";
}

/** The double, with what the tests need to inspect it and to make it fail. */
export interface ConsulApiDouble {
  /** Base URL, as CONSUL_HTTP_ADDR takes it. */
  readonly address: string;
  readonly requests: RecordedRequest[];
  readonly services: ReadonlyMap<string, RegisteredService>;
  /** The current X-Consul-Index. */
  readonly index: number;
  /** Answers every request with this status (and wakes blocked queries) until called with undefined. */
  failWith(status: number | undefined): void;
  /** Sets the index, lower than it was if a test wants it to go backwards, and wakes queries. */
  setIndex(index: number): void;
  /** Sets a check's status by hand, as if the agent had run it. */
  setStatus(id: string, status: "passing" | "critical"): void;
  /** Runs before a request is answered (a delay, an inspection). */
  beforeAnswer(hook: ((request: RecordedRequest) => Promise<void> | void) | undefined): void;
  /** Stops listening and drops every connection: clients see the connection refused. */
  stop(): Promise<void>;
  /** Listens again on the same port, if it stopped. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the Consul HTTP API test double on a free port of 127.0.0.1. */
export async function startConsulApiDouble(): Promise<ConsulApiDouble> {
  const requests: RecordedRequest[] = [];
  const services = new Map<string, RegisteredService>();
  const checkTimers = new Map<string, NodeJS.Timeout>();
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  let index = 1;
  // Bumped when a test sets the index: queries blocked on the old history answer at once.
  let history = 0;
  let failure: number | undefined;
  let hook: ((request: RecordedRequest) => Promise<void> | void) | undefined;

  const changed = () => {
    index++;
    changes.emit("change");
  };

  function setStatus(id: string, status: "passing" | "critical"): void {
    const service = services.get(id);
    if (service === undefined || service.status === status) return;
    service.status = status;
    changed();
  }

  function runHttpCheck(id: string, url: string): void {
    fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (res) => {
        void res.body?.cancel();
        setStatus(id, res.ok ? "passing" : "critical");
      },
      () => setStatus(id, "critical"),
    );
  }

  function register(body: Record<string, unknown>): number {
    if (typeof body.Name !== "string" || body.Name === "") return 400;
    const id = typeof body.ID === "string" ? body.ID : body.Name;
    deregister(id);
    // Consul starts a new check as critical, until it has passed once.
    services.set(id, { body: { ...body, ID: id }, status: "critical" });
    changed();
    const check = body.Check as Record<string, unknown> | undefined;
    if (typeof check?.HTTP === "string" && typeof check.Interval === "string") {
      const url = check.HTTP;
      runHttpCheck(id, url);
      checkTimers.set(
        id,
        setInterval(() => runHttpCheck(id, url), parseGoDuration(check.Interval)),
      );
    }
    return 200;
  }

  function deregister(id: string): boolean {
    clearInterval(checkTimers.get(id));
    checkTimers.delete(id);
    if (!services.delete(id)) return false;
    changed();
    return true;
  }

  function healthOf(name: string, passingOnly: boolean): unknown[] {
    return [...services.values()]
      .filter((s) => s.body.Name === name && (!passingOnly || s.status === "passing"))
      .map((s) => ({
        Node: { Node: "consul-api-double", Address: "127.0.0.1" },
        Service: {
          ID: s.body.ID,
          Service: s.body.Name,
          Tags: s.body.Tags ?? [],
          Address: s.body.Address ?? "",
          Port: s.body.Port ?? 0,
          Meta: s.body.Meta ?? {},
        },
        Checks: [{ ServiceID: s.body.ID, Status: s.status }],
      }));
  }

  // Blocks while the index is not past the one asked for, at most `wait` (Consul: 5 min).
  async function waitForChange(query: URLSearchParams, gone: AbortSignal): Promise<void> {
    const asked = Number(query.get("index") ?? "0");
    const waitMs = parseGoDuration(query.get("wait") ?? "5m");
    const deadline = AbortSignal.any([gone, AbortSignal.timeout(waitMs)]);
    const started = history;
    const blocked = () => asked > 0 && index <= asked && history === started;
    while (blocked() && failure === undefined && !deadline.aborted) {
      await once(changes, "change", { signal: deadline }).catch(() => {});
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://double");
    let text = "";
    for await (const chunk of req) text += chunk;
    const request: RecordedRequest = {
      method: req.method ?? "",
      path: url.pathname,
      query: url.searchParams,
      body: text === "" ? undefined : JSON.parse(text),
      headers: req.headers,
      at: performance.now(),
      answered: false,
    };
    requests.push(request);
    const gone = new AbortController();
    res.once("close", () => gone.abort());
    await hook?.(request);

    const health = /^\/v1\/health\/service\/([^/]+)$/.exec(url.pathname);
    const deregistration = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(url.pathname);
    if (health?.[1] !== undefined && req.method === "GET") {
      await waitForChange(url.searchParams, gone.signal);
    }
    if (gone.signal.aborted) return;
    request.answered = true;
    if (failure !== undefined) return send(res, failure, "text/plain", "rpc error: double failure");
    if (req.method === "PUT" && url.pathname === "/v1/agent/service/register") {
      const status = register(request.body as Record<string, unknown>);
      return send(res, status, "text/plain", status === 200 ? "" : "Missing service name");
    }
    if (req.method === "PUT" && deregistration?.[1] !== undefined) {
      const found = deregister(decodeURIComponent(deregistration[1]));
      return send(res, found ? 200 : 404, "text/plain", found ? "" : "Unknown service ID");
    }
    if (health?.[1] !== undefined && req.method === "GET") {
      const body = healthOf(decodeURIComponent(health[1]), url.searchParams.has("passing"));
      res.setHeader("X-Consul-Index", String(index));
      return send(res, 200, "application/json", JSON.stringify(body));
    }
    send(res, 404, "text/plain", "not part of the double");
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, "text/plain", String(err));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;

  async function stop(): Promise<void> {
    if (!server.listening) return;
    const closed = once(server, "close");
    server.close();
    server.closeAllConnections();
    await closed;
  }

  return {
    address: `http://127.0.0.1:${port}`,
    requests,
    services,
    get index() {
      return index;
    },
    failWith(status) {
      failure = status;
      changes.emit("change");
    },
    setIndex(next) {
      index = next;
      history++;
      changes.emit("change");
    },
    setStatus,
    beforeAnswer(next) {
      hook = next;
    },
    stop,
    async restart() {
      if (server.listening) return;
      server.listen(port, "127.0.0.1");
      await once(server, "listening");
    },
    async close() {
      for (const timer of checkTimers.values()) clearInterval(timer);
      checkTimers.clear();
      await stop();
    },
  };
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "content-type": type });
  res.end(body);
}

/** Milliseconds of a Go duration such as "10s", "1m", "250ms" (what Consul reads). */
export function parseGoDuration(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  const unit = match?.[2] === undefined ? undefined : units[match[2]];
  if (match?.[1] === undefined || unit === undefined) throw new Error(`bad duration ${text}`);
  return Number(match[1]) * unit;
}
