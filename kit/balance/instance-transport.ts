import { ConnectError, type Transport } from "@connectrpc/connect";
import { type UniversalClientFn, validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { compressionBrotli, compressionGzip, createNodeHttpClient } from "@connectrpc/connect-node";
import { markUnanswered } from "./retryable.ts";
import type { SessionKeeper } from "./session-keeper.ts";

/**
 * The Connect transport (binary, HTTP/2) of one instance over its kept-alive session (PINGs, idle
 * timeout: kit/balance/session-keeper.ts), with its HTTP/2 client wrapped: the
 * client's promise settles with the response headers, so a rejection the call's own signal did
 * not cause is a call the instance never answered, however Node and Connect name it (a reset as
 * Aborted, a lost session as Canceled, a refused connection as Unavailable).
 */
export function instanceTransport(baseUrl: string, session: SessionKeeper): Transport {
  const client = createNodeHttpClient({ httpVersion: "2", sessionProvider: () => session });
  const httpClient: UniversalClientFn = (request) =>
    client(request).catch((err: unknown) => {
      const error = ConnectError.from(err);
      throw request.signal?.aborted === true ? error : markUnanswered(error);
    });
  return createTransport({
    baseUrl,
    httpClient,
    useBinaryFormat: true,
    interceptors: [],
    acceptCompression: [compressionGzip, compressionBrotli],
    sendCompression: null,
    ...validateReadWriteMaxBytes(undefined, undefined, undefined),
  });
}
