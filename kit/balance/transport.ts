import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { isIdempotent } from "../call-policy.ts";
import type { Log } from "../log.ts";
import type { Registry, Watcher } from "../registry/registry.ts";
import { watchHealth } from "./health-watch.ts";
import { instanceTransport } from "./instance-transport.ts";
import type { ResiliencePolicy } from "./policy.ts";
import { createResilient, type ResilienceEvents } from "./resilient.ts";
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
 * Creates the client side of service-to-service calls: a Connect transport (binary, HTTP/2)
 * over the instances the registry reports for a service, each one's health watched, with the
 * gateway's balancing, circuit
 * breaker, ejection and retries of idempotent calls (kit/balance). Generated clients use it like
 * any transport: `createClient(UserService, createBalancedTransport({...}))`.
 */
export function createBalancedTransport(options: BalancedTransportOptions): BalancedTransport {
  const { service, registry, defaultTimeoutMs, log } = options;
  const transports = new Map<
    string,
    { transport: Transport; session: SessionKeeper; health: { close(): void } }
  >();
  const resilient = createResilient<string>(service, {
    policy: options.policy,
    log,
    ...(options.events === undefined ? {} : { events: options.events }),
    nameOf: (url) => url,
  });
  const closeInstance = (instance: { session: SessionKeeper; health: { close(): void } }) => {
    instance.health.close();
    instance.session.close();
  };
  const watcher: Watcher = registry.watch(service, (instances) => {
    const urls = instances.map((instance) => instance.address);
    for (const [url, instance] of transports) {
      if (urls.includes(url)) continue;
      closeInstance(instance);
      transports.delete(url);
    }
    for (const url of urls) {
      if (transports.has(url)) continue;
      const session = createSessionKeeper(url, { keepalive: options.policy.keepalive, log });
      const health = watchHealth(service, url, session, {
        log,
        onServing: (serving) => resilient.setServing(url, serving),
      });
      transports.set(url, { transport: instanceTransport(url, session), session, health });
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
      for (const instance of transports.values()) closeInstance(instance);
    },
  };
}
