// What the gateway relies on of Connect's wire format, through connect-es's internal helpers:
// pinned here, so an upgrade that changes them fails these tests rather than a client's call.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  codeName,
  envelopeHeaderOf,
  errorOfResponse,
  httpStatusOfCode,
  readMessages,
} from "./connect-wire.ts";

/** An enveloped frame: flags, a big-endian length, the bytes. */
function frame(flags: number, bytes: Uint8Array | string): Buffer {
  const data = typeof bytes === "string" ? Buffer.from(bytes) : Buffer.from(bytes);
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(data.length, 1);
  return Buffer.concat([header, data]);
}

const endStream = (json: unknown) => frame(0b10, JSON.stringify(json));

/** The messages read from `chunks`, or the error reading them ended with. */
async function read(chunks: Buffer[], max = 1024): Promise<string[] | ConnectError> {
  const out: string[] = [];
  try {
    const stream = (async function* () {
      yield* chunks;
    })();
    for await (const message of readMessages(stream, max)) {
      out.push(Buffer.from(message).toString());
    }
    return out;
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe("Connect's wire format", () => {
  it("envelopes a message with no flags and its length", () => {
    expect(Buffer.concat([envelopeHeaderOf(3), Buffer.from("abc")])).toEqual(frame(0, "abc"));
  });

  it("reads messages split across chunks and joined in one, up to the end of the stream", async () => {
    const bytes = Buffer.concat([frame(0, "one"), frame(0, "two"), endStream({})]);
    const chunks = [bytes.subarray(0, 3), bytes.subarray(3, 11), bytes.subarray(11)];
    expect(await read(chunks)).toEqual(["one", "two"]);
  });

  it("throws the error of the end-of-stream message, with its code and message", async () => {
    const error = await read([
      frame(0, "one"),
      endStream({ error: { code: "permission_denied", message: "not yours" } }),
    ]);
    expect(error).toMatchObject({ code: Code.PermissionDenied, rawMessage: "not yours" });
  });

  it("refuses a message larger than the limit from its header, before reading it", async () => {
    expect(await read([frame(0, "x".repeat(11)).subarray(0, 5)], 10)).toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "upstream message larger than 10 bytes",
    });
  });

  it("refuses a compressed message, which the gateway never asks for", async () => {
    expect(await read([frame(0b1, "zz"), endStream({})])).toMatchObject({
      code: Code.Internal,
      rawMessage: "upstream sent a compressed message unasked",
    });
  });

  it("says a stream that stops inside a message, or without its end, is unavailable", async () => {
    expect(await read([frame(0, "whole").subarray(0, 7)])).toMatchObject({
      code: Code.Unavailable,
      rawMessage: "upstream stream ended inside a message",
    });
    expect(await read([frame(0, "whole")])).toMatchObject({
      code: Code.Unavailable,
      rawMessage: "upstream ended the stream without its end",
    });
  });

  it("reads a Connect error body with its code, message and the response's headers", () => {
    const body = Buffer.from(JSON.stringify({ code: "not_found", message: "no such book" }));
    const error = errorOfResponse(404, { "x-trace": "t1" }, body);
    expect(error).toMatchObject({ code: Code.NotFound, rawMessage: "no such book" });
    expect(error.metadata.get("x-trace")).toBe("t1");
  });

  it("falls back to the code of the HTTP status for a body that is no Connect error", () => {
    const error = errorOfResponse(503, {}, Buffer.from("<html>busy</html>"));
    expect(error).toMatchObject({
      code: Code.Unavailable,
      rawMessage: "upstream answered HTTP 503",
    });
  });

  it("names codes and their HTTP statuses as the Connect protocol does", () => {
    expect(codeName(Code.NotFound)).toBe("not_found");
    expect(codeName(Code.ResourceExhausted)).toBe("resource_exhausted");
    expect(httpStatusOfCode(Code.NotFound)).toBe(404);
    expect(httpStatusOfCode(Code.Unauthenticated)).toBe(401);
    expect(httpStatusOfCode(Code.ResourceExhausted)).toBe(429);
  });
});
