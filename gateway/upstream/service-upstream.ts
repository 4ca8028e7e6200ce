import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { watchHealth } from "../../kit/balance/health-watch.ts";
import type { ResiliencePolicy } from "../../kit/balance/policy.ts";
import { createResilient, type ResilienceEvents } from "../../kit/balance/resilient.ts";
import { createSessionKeeper } from "../../kit/balance/session-keeper.ts";
import { isIdempotent, methodPath } from "../../kit/call-policy.ts";
import {
  type CallOptions,
  createUpstream,
  type StreamCall,
  type UnaryResult,
  type Upstream,
  type UpstreamOptions,
} from "./upstream.ts";

/** Options of createServiceUpstream. */
export interface ServiceUpstreamOptions extends Omit<UpstreamOptions, "sessions"> {
  readonly policy: ResiliencePolicy;
  readonly events?: ResilienceEvents;
}

/**
 * All instances of one upstream service: calls go to the less busy of two healthy instances
 * (serving, by the health Watch of each: kit/balance/health-watch.ts, and not ejected),
 * through one circuit breaker for the service, and idempotent unary calls that got no answer
 * are retried on another instance within the service's retry budget and the call's deadline
 * (kit/balance).
 */
export interface ServiceUpstream {
  /** The service's full name, "protomesh.user.v1.UserService". */
  readonly service: string;
  /** Replaces the instances' base URLs, keeping the connections of those that stay. */
  update(urls: readonly string[]): void;
  /** Calls a unary method: balanced, broken, retried when safe. */
  unary(method: DescMethod, body: Uint8Array, options: CallOptions): Promise<UnaryResult>;
  /** Opens a streaming call on one instance; fails fast while the breaker is open. */
  stream(method: DescMethod, options: CallOptions): StreamCall;
  /**
   * Takes an instance for a call the caller makes itself (the native pass-through); the caller
   * reports how it ended. Throws Unavailable when no call can go.
   */
  acquire(): { upstream: Upstream; done(failed: boolean): void };
  close(): void;
}

/** Creates the upstream of one service over its instances' base URLs. */
export function createServiceUpstream(
  service: string,
  urls: readonly string[],
  options: ServiceUpstreamOptions,
): ServiceUpstream {
  const instances = new Map<string, { upstream: Upstream; health: { close(): void } }>();
  const { log } = options;
  const resilient = createResilient<Upstream>(service, {
    policy: options.policy,
    log,
    ...(options.events === undefined ? {} : { events: options.events }),
    nameOf: (upstream) => upstream.baseUrl,
  });

  function open(url: string) {
    const sessions = createSessionKeeper(url, { keepalive: options.policy.keepalive, log });
    const upstream = createUpstream(service, url, { ...options, sessions });
    const health = watchHealth(service, url, sessions, {
      log,
      onServing: (serving) => resilient.setServing(upstream, serving),
    });
    return { upstream, health };
  }
  const close = ({ upstream, health }: { upstream: Upstream; health: { close(): void } }) => {
    health.close();
    upstream.close();
  };

  function update(next: readonly string[]): void {
    for (const [url, instance] of instances) {
      if (!next.includes(url)) {
        close(instance);
        instances.delete(url);
      }
    }
    for (const url of next) {
      if (!instances.has(url)) instances.set(url, open(url));
    }
    resilient.update([...instances.values()].map((instance) => instance.upstream));
  }
  update(urls);

  return {
    service,
    update,
    unary(method, body, call) {
      const path = methodPath(method);
      return resilient.call(
        {
          idempotent: isIdempotent(method),
          timeoutMs: call.timeoutMs,
          ...(call.signal === undefined ? {} : { signal: call.signal }),
        },
        (upstream, timeoutMs) => upstream.unary(path, body, { ...call, timeoutMs }),
      );
    },
    stream(method, call) {
      const held = resilient.acquire();
      const opened = held.endpoint.stream(methodPath(method), call);
      // The breaker and the instance judge a stream by whether it got its response headers.
      opened.headers.then(
        () => held.done(undefined),
        (err: unknown) => held.done(ConnectError.from(err)),
      );
      return opened;
    },
    acquire() {
      const held = resilient.acquire();
      return {
        upstream: held.endpoint,
        done: (failed) =>
          held.done(
            failed ? new ConnectError("upstream call failed", Code.Unavailable) : undefined,
          ),
      };
    },
    close() {
      resilient.close();
      for (const instance of instances.values()) close(instance);
    },
  };
}
