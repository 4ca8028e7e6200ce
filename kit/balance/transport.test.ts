// The service-to-service transport between real processes: two instances of the gateway's test
// contract's server, found through a static registry, called with a generated client.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { LibraryService } from "../../gateway/testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "../../test/support/process.ts";
import { startResettingServer } from "../../test/support/resetting-server.ts";
import { settle } from "../../test/support/settle.ts";
import { createLogger } from "../log.ts";
import { createStaticRegistry } from "../registry/static.ts";
import { resilienceConfigShape, resiliencePolicyOf } from "./policy.ts";
import { createBalancedTransport } from "./transport.ts";

afterAll(killAllProcesses);

const log = createLogger({ name: "test", level: "silent", format: "json" });
const policy = resiliencePolicyOf(z.object(resilienceConfigShape).parse({}));

/** A generated client over a balanced transport to the instances at `urls`, and its closing. */
function libraryClient(urls: readonly string[]) {
  const registry = createStaticRegistry({ [LibraryService.typeName]: urls });
  let retries = 0;
  const notServing = new Set<string>();
  const transport = createBalancedTransport({
    service: LibraryService.typeName,
    registry,
    policy,
    defaultTimeoutMs: 5_000,
    log,
    events: {
      onRetry: () => retries++,
      onServing: (_, url, serving) => (serving ? notServing.delete(url) : notServing.add(url)),
    },
  });
  return {
    client: createClient(LibraryService, transport),
    retries: () => retries,
    notServing: () => [...notServing],
    close() {
      transport.close();
      registry.close();
    },
  };
}

/** The calls a process is serving now, from its /metrics. */
async function inFlight(p: StartedProcess): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  return Number(/^rpc_server_in_flight (\d+)$/m.exec(text)?.[1]);
}

const callsIn = (p: StartedProcess) => p.logs.filter((l) => l.msg === "call").length;

describe("balanced transport", () => {
  it("spreads a client's calls over the instances, streams included", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const b = await startProcess("gateway/testdata/library-server.js");
    const { client, close } = libraryClient([a.url, b.url]);
    for (let i = 0; i < 20; i++) {
      expect(await client.getShelf({ shelfId: `s${i}` })).toMatchObject({ id: `s${i}` });
    }
    await expect.poll(() => callsIn(a)).toBeGreaterThan(2);
    await expect.poll(() => callsIn(b)).toBeGreaterThan(2);
    const titles: string[] = [];
    for await (const book of client.streamBooks({ shelfId: "s", count: 3 }))
      titles.push(book.title);
    expect(titles).toEqual(["Book 0", "Book 1", "Book 2"]);
    close();
    await Promise.all([a.stop(), b.stop()]);
  });

  it("retries a call with no side effects that an instance cut off before answering, never a write", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const cut = await startResettingServer();
    const { client, close } = libraryClient([a.url, cut.url]);
    // ArchiveBook may have run before the connection went: it is never sent twice.
    const writes = [];
    for (let i = 0; i < 40 && cut.requests() === 0; i++) {
      writes.push(await settle(client.archiveBook({ name: `b${i}`, reason: "old" })));
    }
    expect(cut.requests()).toBe(1);
    expect(writes.filter((r) => !r.ok)).toHaveLength(1);

    // GetShelf has no side effects: every call the cut instance dropped went to the other one.
    const reads = [];
    for (let i = 0; i < 40; i++) reads.push(await settle(client.getShelf({ shelfId: `s${i}` })));
    expect(cut.requests()).toBeGreaterThan(1);
    expect(reads.filter((r) => !r.ok).map((r) => !r.ok && r.error.code)).toEqual([]);
    close();
    await Promise.all([a.stop(), cut.close()]);
  });

  it("sends a write that an instance refused unrun (REFUSED_STREAM, as when draining) to another instance", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const refusing = await startResettingServer("refused-stream");
    const { client, close } = libraryClient([a.url, refusing.url]);
    const writes = [];
    for (let i = 0; i < 30; i++) {
      writes.push(await settle(client.archiveBook({ name: `b${i}`, reason: "old" })));
    }
    expect(refusing.requests()).toBeGreaterThan(0);
    expect(writes.filter((r) => !r.ok).map((r) => !r.ok && r.error.message)).toEqual([]);
    close();
    await Promise.all([a.stop(), refusing.close()]);
  });

  it("stops sending calls to an instance whose health turns NOT_SERVING, so none is refused", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const b = await startProcess("gateway/testdata/library-server.js", {
      env: { SHUTDOWN_GRACE_MS: "5000" },
    });
    const { client, retries, notServing, close } = libraryClient([a.url, b.url]);
    for (let i = 0; i < 10; i++) await client.getShelf({ shelfId: `s${i}` });
    // A slow call keeps b draining while the others go.
    const direct = createClient(
      LibraryService,
      createConnectTransport({ baseUrl: b.url, httpVersion: "2" }),
    );
    const slow = direct.getShelf({ shelfId: "slow", delayMs: 3_000 });
    await expect.poll(() => inFlight(b)).toBe(1);
    const stopped = b.stop();
    // The transport hears NOT_SERVING on b's health Watch as b starts to drain.
    await expect.poll(notServing).toEqual([b.url]);
    const results = [];
    for (let i = 0; i < 20; i++) {
      results.push(await settle(client.archiveBook({ name: `b${i}`, reason: "old" })));
    }
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(retries()).toBe(0);
    await slow;
    close();
    await Promise.all([a.stop(), stopped]);
  });
});
