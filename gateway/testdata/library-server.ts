// The test contract's LibraryService as a real server process, for the gateway's end-to-end
// tests and its benchmark: a unary call that does no work, one RPC of each streaming kind, and a
// ranged download of contents held in memory. Methods without an implementation answer
// Unimplemented.
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { serverConfigSchema } from "../../kit/config.ts";
import { runProcess } from "../../kit/run-process.ts";
import { bindService, createServer } from "../../kit/server.ts";
import { LibraryService } from "./gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";

/** Bytes that depend on their offset (offset mod 251), so a reordered or lost chunk shows. */
function patternOf(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

// The contents ReadBook serves, by book name, with their ETags.
const books = new Map(
  Object.entries({ b1: patternOf(1024 * 1024 + 7), large: patternOf(16 * 1024 * 1024) }).map(
    ([name, content]) => [
      name,
      { content, etag: `"${createHash("sha256").update(content).digest("hex")}"` },
    ],
  ),
);
books.set("empty", { content: Buffer.alloc(0), etag: `"${createHash("sha256").digest("hex")}"` });
const lastModified = new Date(Date.UTC(2024, 0, 2, 3, 4, 5)).toUTCString();

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

        async *readBook(req, ctx) {
          const book = books.get(req.name);
          if (book === undefined) {
            throw new ConnectError(`no book named "${req.name}"`, Code.NotFound);
          }
          const size = book.content.length;
          const start =
            req.offset < 0n ? Math.max(0, size + Number(req.offset)) : Number(req.offset);
          if (start >= size && (size > 0 || req.offset > 0n)) {
            const metadata = req.undescribed ? undefined : { "content-range": `bytes */${size}` };
            throw new ConnectError(
              `offset ${req.offset} is beyond the end`,
              Code.OutOfRange,
              metadata,
            );
          }
          const end = req.length > 0n ? Math.min(size, start + Number(req.length)) : size;
          if (!req.undescribed) {
            const range = end > start ? `bytes ${start}-${end - 1}/${size}` : `bytes */${size}`;
            ctx.responseHeader.set("content-range", range);
            ctx.responseHeader.set("etag", book.etag);
            ctx.responseHeader.set("last-modified", lastModified);
            ctx.responseHeader.set("content-disposition", `attachment; filename="${req.name}.bin"`);
          }
          const chunk = Math.max(1, req.chunkBytes || 64 * 1024);
          for (let at = start; at < end; at += chunk) {
            if (req.failAfterBytes !== undefined && at - start >= req.failAfterBytes) {
              throw new ConnectError("the book fell apart", Code.FailedPrecondition);
            }
            const data = book.content.subarray(at, Math.min(end, at + chunk));
            yield at === start ? { contentType: "application/x-book", data } : { data };
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
