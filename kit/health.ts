import { EventEmitter, on } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.ts";

export { ServingStatus };

/**
 * The serving status of a process and of each service it hosts (grpc.health.v1).
 * The empty name "" stands for the whole process.
 */
export interface HealthState {
  /** Marks every service SERVING (start-up finished) or NOT_SERVING (starting or draining). */
  setServing(serving: boolean): void;
  /** The status of one service, or undefined for a name this process does not host. */
  status(service: string): ServingStatus | undefined;
  /** True while the process as a whole is SERVING. */
  readonly serving: boolean;
  /** Adds grpc.health.v1.Health (Check, List, Watch) to a router. */
  register(router: ConnectRouter): void;
}

/** Creates the health state for a process hosting the named services; all start NOT_SERVING. */
export function createHealth(serviceNames: readonly string[]): HealthState {
  const names = ["", ...serviceNames];
  const statuses = new Map<string, ServingStatus>(names.map((n) => [n, ServingStatus.NOT_SERVING]));
  const changes = new EventEmitter();
  // Every Watch stream listens here; the default limit of 10 would warn with normal load.
  changes.setMaxListeners(0);

  const state: HealthState = {
    setServing(serving) {
      const next = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      for (const name of names) statuses.set(name, next);
      changes.emit("change");
    },
    status: (service) => statuses.get(service),
    get serving() {
      return statuses.get("") === ServingStatus.SERVING;
    },
    register(router) {
      router.service(Health, {
        check(req) {
          const status = statuses.get(req.service);
          if (status === undefined) {
            throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
          }
          return { status };
        },
        list() {
          const all = Object.fromEntries(
            [...statuses].map(([name, status]) => [
              name,
              create(HealthCheckResponseSchema, { status }),
            ]),
          );
          return { statuses: all };
        },
        async *watch(req, ctx) {
          // Per the health-checking protocol: send the current status at once, then each change;
          // an unknown service is reported as SERVICE_UNKNOWN and the stream stays open.
          const current = () => statuses.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
          let last = current();
          yield { status: last };
          try {
            for await (const _ of on(changes, "change", { signal: ctx.signal })) {
              const now = current();
              if (now !== last) {
                last = now;
                yield { status: now };
              }
            }
          } catch (err) {
            // The caller went away or the server is stopping: end the stream quietly.
            if (!ctx.signal.aborted) throw err;
          }
        },
      });
    },
  };
  return state;
}
