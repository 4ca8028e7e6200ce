// The service-to-service transport between real processes: two instances of the gateway's test
// contract's server, found through a static registry, called with a generated client.
import { createClient } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { LibraryService } from "../../gateway/testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import { killAllProcesses, startProcess } from "../../test/support/process.ts";
import { createLogger } from "../log.ts";
import { createStaticRegistry } from "../registry/static.ts";
import { resilienceConfigShape, resiliencePolicyOf } from "./policy.ts";
import { createBalancedTransport } from "./transport.ts";

afterAll(killAllProcesses);

const log = createLogger({ name: "test", level: "silent", format: "json" });
const policy = resiliencePolicyOf(z.object(resilienceConfigShape).parse({}));

describe("balanced transport", () => {
  it("spreads a client's calls over the instances and survives one being killed", async () => {
    const a = await startProcess("gateway/testdata/library-server.js");
    const b = await startProcess("gateway/testdata/library-server.js");
    const registry = createStaticRegistry({ [LibraryService.typeName]: [a.url, b.url] });
    const transport = createBalancedTransport({
      service: LibraryService.typeName,
      registry,
      policy,
      defaultTimeoutMs: 5_000,
      log,
    });
    const client = createClient(LibraryService, transport);
    for (let i = 0; i < 20; i++) {
      expect(await client.getShelf({ shelfId: `s${i}` })).toMatchObject({ id: `s${i}` });
    }
    const callsIn = (p: typeof a) => p.logs.filter((l) => l.msg === "call").length;
    await new Promise((r) => setTimeout(r, 100));
    expect(callsIn(a)).toBeGreaterThan(2);
    expect(callsIn(b)).toBeGreaterThan(2);

    await b.stop("SIGKILL");
    // GetShelf has no side effects: a call that reaches the dead instance goes again.
    for (let i = 0; i < 30; i++) {
      expect(await client.getShelf({ shelfId: `after${i}` })).toMatchObject({ id: `after${i}` });
    }
    // Streams go through it too.
    const titles: string[] = [];
    for await (const book of client.streamBooks({ shelfId: "s", count: 3 }))
      titles.push(book.title);
    expect(titles).toEqual(["Book 0", "Book 1", "Book 2"]);
    transport.close();
    registry.close();
  });
});
