import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exchange, parseHttpResponse } from "../test/support/raw-socket.ts";
import { loadConfig, serverConfigSchema } from "./config.ts";
import { createLogger } from "./log.ts";
import { createServer, type Server } from "./server.ts";

let server: Server;
let port: number;

beforeAll(async () => {
  const config = loadConfig(serverConfigSchema(0), { LOG_LEVEL: "silent" });
  server = createServer({
    config,
    log: createLogger({ name: "test", level: "silent" }),
    services: [],
  });
  port = await server.listen();
});

afterAll(() => server.close());

/** Sends raw bytes to the server and parses its answer, checking it is the JSON error body. */
async function answerTo(request: string) {
  const response = parseHttpResponse(await exchange(port, request));
  expect(response.headers["content-type"]).toBe("application/json");
  expect(Number(response.headers["content-length"])).toBe(Buffer.byteLength(response.body));
  return { status: response.status, body: JSON.parse(response.body) as unknown };
}

describe("errors of the HTTP/1.1 parser", () => {
  it("answers an oversized header with 431 and the JSON error body", async () => {
    const answer = await answerTo(
      `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    expect(answer).toEqual({
      status: 431,
      body: { code: 8, message: expect.stringContaining("exceed 16384 bytes"), details: [] },
    });
  });

  it("answers a malformed request line with 400 and the JSON error body", async () => {
    const answer = await answerTo("G@T /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    expect(answer).toEqual({
      status: 400,
      body: {
        code: 3,
        message: "malformed HTTP/1.1 request: Invalid method encountered",
        details: [],
      },
    });
  });

  it("answers chunk extensions that are too long with 413 and the JSON error body", async () => {
    // A Connect call: its handler reads the whole body before it answers.
    const chunked =
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" +
      "transfer-encoding: chunked\r\n\r\n";
    const answer = await answerTo(`${chunked}1;${"a".repeat(20_000)}\r\nx\r\n0\r\n\r\n`);
    expect(answer).toEqual({
      status: 413,
      body: { code: 8, message: expect.stringContaining("chunk extensions"), details: [] },
    });
  });

  it("keeps serving well-formed requests", async () => {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(response.status).toBe(200);
  });
});
