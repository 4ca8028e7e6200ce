// The gateway in front of several instances of a service, between real processes: balancing,
// retries of idempotent calls on another instance, outlier ejection, no retry of calls that are
// not idempotent, the circuit breaker failing fast while every instance is down, and a
// half-open connection (a TCP proxy that holds every byte without closing) dropped after an
// unanswered PING instead of holding calls to their deadline.
import { afterAll, describe, expect, it } from "vitest";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";
import { startResettingServer } from "./support/resetting-server.ts";
import { startTcpProxy } from "./support/tcp-proxy.ts";

const service = "protomesh.gatewaytest.v1.LibraryService";

// A failed test leaves its processes running; none outlives the file.
afterAll(killAllProcesses);

async function startPair(
  env: Record<string, string> = {},
): Promise<{ a: StartedProcess; b: StartedProcess; gw: StartedProcess }> {
  const a = await startProcess("gateway/testdata/library-server.js");
  const b = await startProcess("gateway/testdata/library-server.js");
  const gw = await startProcess("gateway/testdata/library-gateway.js", {
    // Steady load from one address: rate limits are tested elsewhere.
    env: { LIBRARY_SERVICE_URL: `${a.url},${b.url}`, RATE_LIMITS: "default=off", ...env },
  });
  return { a, b, gw };
}

/** The value of one metric sample on the gateway's /metrics, 0 when absent. */
async function metric(gw: StartedProcess, name: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{service="${service}"}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

const callsIn = (p: StartedProcess) => p.logs.filter((l) => l.msg === "call").length;

describe("several instances behind the gateway", () => {
  it("spreads calls over both instances", async () => {
    const { a, b, gw } = await startPair();
    for (let i = 0; i < 40; i++) {
      expect((await fetch(`${gw.url}/v1/shelves/s${i}`)).status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(callsIn(a)).toBeGreaterThan(5);
    expect(callsIn(b)).toBeGreaterThan(5);
    await Promise.all([a.stop(), b.stop(), gw.stop()]);
  });

  it("loses no idempotent call under load when an instance is killed, and ejects it", async () => {
    const { a, b, gw } = await startPair();
    const statuses: number[] = [];
    // What a failed call answered, so that a failure says which rule let it through.
    const failures: string[] = [];
    let running = true;
    const worker = async (id: number) => {
      for (let i = 0; running; i++) {
        const res = await fetch(`${gw.url}/v1/shelves/w${id}-${i}`);
        statuses.push(res.status);
        const text = await res.text();
        if (res.status !== 200) failures.push(`${res.status} ${text}`);
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await new Promise((r) => setTimeout(r, 500));
    await b.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(workers);
    expect(statuses.length).toBeGreaterThan(50);
    expect(failures).toEqual([]);
    expect(await metric(gw, "gateway_upstream_ejections_total")).toBeGreaterThanOrEqual(1);
    expect(await metric(gw, "gateway_upstream_retries_total")).toBeGreaterThanOrEqual(1);
    await Promise.all([a.stop(), gw.stop()]);
  });

  it("fails none of 2,500 reads and writes while one of two instances restarts under load", async () => {
    const { a, b, gw } = await startPair();
    const total = 2_500;
    let sent = 0;
    const failures: string[] = [];
    const worker = async () => {
      while (sent < total) {
        const i = sent++;
        // Every other call a write, which only a refusal (nothing ran) lets go again.
        const res =
          i % 2 === 0
            ? await fetch(`${gw.url}/v1/shelves/s${i}`)
            : await fetch(`${gw.url}/v1/books/b${i}:archive`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ reason: "old" }),
              });
        const text = await res.text();
        if (res.status !== 200) failures.push(`${res.status} ${text}`);
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await expect.poll(() => sent, { timeout: 20_000 }).toBeGreaterThan(400);
    await b.stop();
    const restarted = await startProcess("gateway/testdata/library-server.js", {
      env: { PORT: String(b.port) },
    });
    await Promise.all(workers);
    expect(failures).toEqual([]);
    // The restarted instance is routed to again.
    await expect
      .poll(
        async () => {
          await fetch(`${gw.url}/v1/shelves/again`);
          return callsIn(restarted);
        },
        { timeout: 10_000 },
      )
      .toBeGreaterThan(0);
    await Promise.all([a.stop(), restarted.stop(), gw.stop()]);
  });

  it("retries a read that an instance cut off before answering, and never a write", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const cut = await startResettingServer();
    const gw = await startProcess("gateway/testdata/library-gateway.js", {
      env: { LIBRARY_SERVICE_URL: `${a.url},${cut.url}`, RATE_LIMITS: "default=off" },
    });
    const archive = (name: string) =>
      fetch(`${gw.url}/v1/books/${name}:archive`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ reason: "old" }),
      });
    const writes: number[] = [];
    for (let i = 0; i < 40 && cut.requests() === 0; i++)
      writes.push((await archive(`b${i}`)).status);
    expect(cut.requests()).toBe(1);
    expect(writes.filter((s) => s !== 200)).toEqual([503]);

    const reads: number[] = [];
    for (let i = 0; i < 40; i++) reads.push((await fetch(`${gw.url}/v1/shelves/s${i}`)).status);
    expect(cut.requests()).toBeGreaterThan(1);
    expect(reads.filter((s) => s !== 200)).toEqual([]);
    await Promise.all([a.stop(), gw.stop(), cut.close()]);
  });

  it("never retries a call that is not idempotent", async () => {
    const { a, b, gw } = await startPair();
    await b.stop("SIGKILL");
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${gw.url}/v1/books/b${i}:archive`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ reason: "old" }),
      });
      statuses.push(res.status);
    }
    // The calls that went to the dead instance failed; none went again to the live one.
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(await metric(gw, "gateway_upstream_retries_total")).toBe(0);
    await Promise.all([a.stop(), gw.stop()]);
  });

  it("names the unavailable service, never an instance's address, over REST and Connect", async () => {
    const library = await startProcess("gateway/testdata/library-server.js");
    const gw = await startProcess("gateway/testdata/library-gateway.js", {
      env: { LIBRARY_SERVICE_URL: library.url },
    });
    await library.stop("SIGKILL");
    const rest = await fetch(`${gw.url}/v1/shelves/s1`);
    const native = await fetch(`${gw.url}/${service}/GetShelf`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ shelfId: "s1" }),
    });
    for (const res of [rest, native]) {
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ message: `service ${service} is unavailable` });
      expect(text).not.toContain("127.0.0.1");
      expect(text).not.toContain(String(library.port));
    }
    // The operator finds the address in the log.
    expect(gw.logs.some((l) => l.upstream === library.url)).toBe(true);
    await gw.stop();
  });

  it("opens the breaker when every instance is down, fails fast with 503, and closes once they are back", async () => {
    const { a, b, gw } = await startPair({ UPSTREAM_BREAKER_RESET_MS: "2000" });
    const ports = [a.port, b.port];
    // Crashed, not drained: a drained instance says NOT_SERVING and gets no calls at all.
    await Promise.all([a.stop("SIGKILL"), b.stop("SIGKILL")]);
    // Enough failed calls to open the breaker.
    for (let i = 0; i < 30; i++) await (await fetch(`${gw.url}/v1/shelves/x`)).arrayBuffer();
    expect(await metric(gw, "gateway_upstream_breaker_state")).toBe(2);
    const timings: number[] = [];
    for (let i = 0; i < 100; i++) {
      const started = performance.now();
      const res = await fetch(`${gw.url}/v1/shelves/x`);
      const body = (await res.json()) as { code: number; message: string };
      timings.push(performance.now() - started);
      expect(res.status).toBe(503);
      expect(body).toMatchObject({ code: 14, message: expect.stringMatching(/circuit breaker/) });
    }
    timings.sort((x, y) => x - y);
    expect(timings[98]).toBeLessThan(50);

    const back = await Promise.all(
      ports.map((port) =>
        startProcess("gateway/testdata/library-server.js", { env: { PORT: String(port) } }),
      ),
    );
    // After the reset timeout one call goes through (half-open); its success closes it.
    let closed = false;
    for (let i = 0; i < 100 && !closed; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const res = await fetch(`${gw.url}/v1/shelves/x`);
      await res.arrayBuffer();
      closed = res.status === 200;
    }
    expect(closed).toBe(true);
    const states = gw.logs.map((l) => l.breaker).filter(Boolean);
    expect(states[0]).toBe("open");
    expect(states.slice(-2)).toEqual(["half-open", "closed"]);
    expect(await metric(gw, "gateway_upstream_breaker_state")).toBe(0);
    await Promise.all([...back.map((p) => p.stop()), gw.stop()]);
  });

  it("answers 504 at the deadline the client asked for and cancels the upstream call", async () => {
    const library = await startProcess("gateway/testdata/library-server.js");
    const gw = await startProcess("gateway/testdata/library-gateway.js", {
      env: { LIBRARY_SERVICE_URL: library.url },
    });
    const started = performance.now();
    const res = await fetch(`${gw.url}/v1/shelves/slow?delayMs=5000`, {
      headers: { "x-timeout-ms": "300" },
    });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: 4 });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(2_000);
    // The service saw its call end with the deadline, long before its 5 s were up.
    const ended = () =>
      library.logs.find((l) => l.method === `${service}/GetShelf` && l.code !== "ok");
    for (let i = 0; i < 40 && ended() === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(ended()).toMatchObject({ code: expect.stringMatching(/deadline_exceeded|canceled/) });
    expect(ended()?.durationMs as number).toBeLessThan(1_500);

    const bad = await fetch(`${gw.url}/v1/shelves/x`, { headers: { "x-timeout-ms": "soon" } });
    expect(bad.status).toBe(400);
    await Promise.all([library.stop(), gw.stop()]);
  });
});

describe("a half-open upstream connection", () => {
  it("is dropped after an unanswered PING: its calls go to the healthy instance, not to their deadline", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const b = await startProcess("gateway/testdata/library-server.js");
    const proxy = await startTcpProxy(a.port);
    const gw = await startProcess("gateway/testdata/library-gateway.js", {
      env: {
        LIBRARY_SERVICE_URL: `http://127.0.0.1:${proxy.port},${b.url}`,
        RATE_LIMITS: "default=off",
        UPSTREAM_PING_INTERVAL_MS: "200",
        UPSTREAM_PING_TIMEOUT_MS: "200",
        UPSTREAM_EJECT_BASE_MS: "500",
      },
    });
    for (let i = 0; i < 20; i++) {
      expect((await fetch(`${gw.url}/v1/shelves/warm${i}`)).status).toBe(200);
    }
    await expect.poll(() => callsIn(a)).toBeGreaterThan(0);
    expect(proxy.accepted).toBe(1);

    proxy.stall();
    // Each call may take 5 s, far more than a PING interval and timeout: the calls that went
    // to the stalled instance are answered by the other one once the session is given up.
    const statuses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        fetch(`${gw.url}/v1/shelves/stalled${i}`, { headers: { "x-timeout-ms": "5000" } }).then(
          (res) => res.status,
        ),
      ),
    );
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(await metric(gw, "gateway_upstream_retries_total")).toBeGreaterThanOrEqual(1);
    expect(await metric(gw, "gateway_upstream_ejections_total")).toBeGreaterThanOrEqual(1);

    // Once the way is clear again, calls reach the instance on a new connection.
    proxy.resume();
    const before = callsIn(a);
    await expect
      .poll(
        async () => {
          await (await fetch(`${gw.url}/v1/shelves/back`)).arrayBuffer();
          return callsIn(a);
        },
        { timeout: 5_000 },
      )
      .toBeGreaterThan(before);
    expect(proxy.accepted).toBeGreaterThan(1);
    await Promise.all([a.stop(), b.stop(), gw.stop(), proxy.close()]);
  });
});
