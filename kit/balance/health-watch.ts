// Each instance's own word on whether it serves: a grpc.health.v1 Watch stream per instance,
// as gRPC clients' health checking does (gRPC A17), so that calls stop going to an instance
// the moment it starts to drain, not when its refusals or the registry catch up.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.ts";
import type { Log } from "../log.ts";
import { instanceTransport } from "./instance-transport.ts";
import type { SessionKeeper } from "./session-keeper.ts";

/** How long a broken Watch waits before it is opened again: doubling from the first to the last. */
const watchRetryMs = { first: 250, last: 5_000 } as const;

/**
 * Watches the health of `service` on the instance at `baseUrl`, over its session, and tells
 * `onServing` each status it reports: NOT_SERVING is false, the others true (an instance that
 * does not host the service answers its calls Unimplemented, which says more than a refusal). A
 * broken stream is opened again with backoff, the last status holding meanwhile (a draining
 * instance stays out until it says it serves again); an instance without the health service
 * (Unimplemented) is never asked again and counts as serving. Returns what stops the watch.
 */
export function watchHealth(
  service: string,
  baseUrl: string,
  sessions: SessionKeeper,
  options: { readonly log: Log; readonly onServing: (serving: boolean) => void },
): { close(): void } {
  const client = createClient(Health, instanceTransport(baseUrl, sessions));
  const stop = new AbortController();
  const { log, onServing } = options;

  async function watch(): Promise<void> {
    let waitMs: number = watchRetryMs.first;
    while (!stop.signal.aborted) {
      try {
        for await (const { status } of client.watch({ service }, { signal: stop.signal })) {
          waitMs = watchRetryMs.first;
          onServing(status !== ServingStatus.NOT_SERVING);
        }
      } catch (err) {
        if (stop.signal.aborted) return;
        if (ConnectError.from(err).code === Code.Unimplemented) {
          log.info(
            { service, upstream: baseUrl },
            "instance has no health service: counted as serving",
          );
          return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, waitMs).unref());
      waitMs = Math.min(watchRetryMs.last, waitMs * 2);
    }
  }
  void watch();
  return { close: () => stop.abort() };
}
