import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { type UniversalClientFn, validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { compressionBrotli, compressionGzip, createNodeHttpClient } from "@connectrpc/connect-node";
import { isIdempotent } from "../call-policy.ts";
import type { Log } from "../log.ts";
import type { Registry, Watcher } from "../registry/registry.ts";
import type { ResiliencePolicy } from "./policy.ts";
import { createResilient, type ResilienceEvents } from "./resilient.ts";
import { markUnanswered } from "./retryable.ts";
import { createSessionKeeper, type SessionKeeper } from "./session-keeper.ts";

/** Options of createBalancedTransport. */
export interface BalancedTransportOptions {
  /** The full name of the service called, "protomesh.user.v1.UserService". */
  readonly service: string;
  /** Where its instances come from. */
  readonly registry: Registry;
  readonly policy: ResiliencePolicy;
  /** The deadline of a call whose caller gives none. */
  readonly defaultTimeoutMs: number;
  readonly log: Log;
  readonly events?: ResilienceEvents;
}

/** A Connect transport over every instance of a service, to be closed with its owner. */
export interface BalancedTransport extends Transport {
  close(): void;
}

/**
 * The Connect transport (binary, HTTP/2) of one instance over its kept-alive session (PINGs, idle
 * timeout: kit/balance/session-keeper.ts), with its HTTP/2 client wrapped: the
 * client's promise settles with the response headers, so a rejection the call's own signal did
 * not cause is a call the instance never answered, however Node and Connect name it (a reset as
 * Aborted, a lost session as Canceled, a refused connection as Unavailable).
 */
function instanceTransport(baseUrl: string, session: SessionKeeper): Transport {
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

/**
 * Creates the client side of service-to-service calls: a Connect transport (binary, HTTP/2)
 * over the instances the registry reports for a service, with the gateway's balancing, circuit
 * breaker, ejection and retries of idempotent calls (kit/balance). Generated clients use it like
 * any transport: `createClient(UserService, createBalancedTransport({...}))`.
 */
export function createBalancedTransport(options: BalancedTransportOptions): BalancedTransport {
  const { service, registry, defaultTimeoutMs, log } = options;
  const transports = new Map<string, { transport: Transport; session: SessionKeeper }>();
  const resilient = createResilient<string>(service, {
    policy: options.policy,
    log,
    ...(options.events === undefined ? {} : { events: options.events }),
    nameOf: (url) => url,
  });
  const watcher: Watcher = registry.watch(service, (instances) => {
    const urls = instances.map((instance) => instance.address);
    for (const [url, { session }] of transports) {
      if (urls.includes(url)) continue;
      session.close();
      transports.delete(url);
    }
    for (const url of urls) {
      if (transports.has(url)) continue;
      const session = createSessionKeeper(url, { keepalive: options.policy.keepalive, log });
      transports.set(url, { transport: instanceTransport(url, session), session });
    }
    resilient.update(urls);
  });
  const transportOf = (url: string): Transport => {
    const transport = transports.get(url)?.transport;
    if (transport === undefined) {
      // Callers pass the message on to their own clients: it names no address.
      throw new ConnectError(`an instance of ${service} left the registry`, Code.Unavailable);
    }
    return transport;
  };

  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      return resilient.call(
        {
          idempotent: isIdempotent(method),
          timeoutMs: timeoutMs ?? defaultTimeoutMs,
          ...(signal === undefined ? {} : { signal }),
        },
        (url, remainingMs) =>
          transportOf(url).unary(method, signal, remainingMs, header, input, contextValues),
      );
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      const held = resilient.acquire();
      try {
        const response = await transportOf(held.endpoint).stream(
          method,
          signal,
          timeoutMs ?? defaultTimeoutMs,
          header,
          input,
          contextValues,
        );
        held.done(undefined);
        return response;
      } catch (err) {
        held.done(err);
        throw err;
      }
    },
    close() {
      watcher.close();
      resilient.close();
      for (const { session } of transports.values()) session.close();
    },
  };
}
