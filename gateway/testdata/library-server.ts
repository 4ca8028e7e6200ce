// The test contract's LibraryService as a real server process, for the gateway's end-to-end
// tests and its benchmark: a unary call that does no work, and one RPC of each streaming kind.
// Methods without an implementation answer Unimplemented.
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { serverConfigSchema } from "../../kit/config.ts";
import { runProcess } from "../../kit/run-process.ts";
import { bindService, createServer } from "../../kit/server.ts";
import { LibraryService } from "./gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";

await runProcess("library", serverConfigSchema(0), (config, log) =>
  createServer({
    config,
    log,
    services: [
      bindService(LibraryService, {
        async getShelf(req, ctx) {
          if (req.delayMs > 0) await sleep(req.delayMs, undefined, { signal: ctx.signal });
          return { id: req.shelfId, theme: "poetry" };
        },

        archiveBook(req) {
          return { name: req.name, title: `archived: ${req.reason}` };
        },

        async *streamBooks(req, ctx) {
          for (let i = 0; i < req.count; i++) {
            if (req.failAfter !== undefined && i === req.failAfter) {
              throw new ConnectError("the shelf collapsed", Code.FailedPrecondition);
            }
            if (i > 0 && req.intervalMs > 0) {
              await sleep(req.intervalMs, undefined, { signal: ctx.signal });
            }
            yield { name: `shelves/${req.shelfId}/books/${i}`, title: `Book ${i}`, pages: 100n };
          }
          if (req.failAfter !== undefined && req.failAfter >= req.count) {
            throw new ConnectError("the shelf collapsed", Code.FailedPrecondition);
          }
        },

        async *downloadBook(req) {
          const chunk = Math.max(1, req.chunkBytes || 64 * 1024);
          let sent = 0n;
          while (sent < req.sizeBytes) {
            if (req.failAfterBytes !== undefined && sent >= req.failAfterBytes) {
              throw new ConnectError("the book fell apart", Code.FailedPrecondition);
            }
            const n = Number(req.sizeBytes - sent < BigInt(chunk) ? req.sizeBytes - sent : chunk);
            // Bytes that depend on their offset (offset mod 251), so a reordered or lost chunk
            // shows.
            const start = Number(sent % 251n);
            const data = Uint8Array.from({ length: n }, (_, i) => (start + i) % 251);
            yield sent === 0n ? { contentType: req.contentType, data } : { data };
            sent += BigInt(n);
          }
        },

        async uploadBook(requests) {
          const hash = createHash("sha256");
          let shelfId = "";
          let title = "";
          let size = 0n;
          let count = 0;
          for await (const req of requests) {
            count++;
            if (req.shelfId !== "") shelfId = req.shelfId;
            if (req.payload.case === "book") {
              if (count > 1) {
                throw new ConnectError("metadata must come first", Code.InvalidArgument);
              }
              title = req.payload.value.title;
            } else if (req.payload.case === "chunk") {
              hash.update(req.payload.value);
              size += BigInt(req.payload.value.byteLength);
            }
          }
          return {
            shelfId,
            title,
            sizeBytes: size,
            sha256: hash.digest("hex"),
            messageCount: count,
          };
        },

        async *converse(requests) {
          for await (const req of requests) {
            if (req.repeat < 0) {
              throw new ConnectError("repeat must not be negative", Code.InvalidArgument);
            }
            for (let index = 0; index < req.repeat; index++) {
              yield { shelfId: req.shelfId, text: req.text, index };
            }
          }
        },
      }),
    ],
  }),
);
