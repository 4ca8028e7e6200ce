import type { ServerConfig } from "./config.ts";
import type { HealthState } from "./health.ts";
import type { InFlight } from "./in-flight.ts";
import { createDualListener, type DualHandler, type UpgradeHandler } from "./listener.ts";
import type { Log } from "./log.ts";

/** How long requests still running after the grace period get to send their final status. */
const abandonGraceMs = 500;

/** The listening and draining of one server process. */
export interface Serving {
  /** True from the moment close() has withdrawn the process from discovery. */
  readonly draining: boolean;
  /** Starts listening, reports SERVING and announces the process; resolves with the port. */
  listen(): Promise<number>;
  /**
   * Withdraws the process from discovery, then drains: NOT_SERVING at once, while the
   * listener stays open so that health checks keep answering it; in-flight requests get the
   * grace period; then every connection closes.
   */
  close(): Promise<void>;
}

/** How a process makes itself known to service discovery (kit/registry) and withdraws. */
export interface Announcement {
  /** Called once listening and SERVING, with the bound port; a rejection fails the start. */
  register(port: number): Promise<void>;
  /** Called first thing on close, before draining; it should not reject. */
  deregister(): Promise<void>;
}

/** What a server process serves and what it does when it stops. */
export interface ServingOptions {
  readonly config: ServerConfig;
  readonly log: Log;
  readonly health: HealthState;
  readonly inFlight: InFlight;
  readonly handle: DualHandler;
  /** Takes HTTP/1.1 upgrade requests (WebSocket); without it they are ordinary requests. */
  readonly upgrade?: UpgradeHandler;
  /** Cancels what still runs once the grace period is over, so it can answer before closing. */
  readonly abandon?: () => void;
  /** Releases what the server holds (upstream connections, …) once it is closed. */
  readonly release?: () => void;
  /** Registers the process once it listens and deregisters it before it drains. */
  readonly announce?: Announcement;
}

/** Creates the lifecycle shared by the services and the gateway: one port, graceful drain. */
export function createServing(options: ServingOptions): Serving {
  const { config, log, health, inFlight } = options;
  const listener = createDualListener(options.handle, options.upgrade, config);
  let closing = false;
  let draining = false;
  return {
    get draining() {
      return draining;
    },
    async listen() {
      const port = await listener.listen(config.PORT, config.HOST);
      health.setServing(true);
      await options.announce?.register(port);
      log.info({ address: `${config.HOST}:${port}` }, "listening");
      return port;
    },
    async close() {
      if (closing) return;
      closing = true;
      // Out of discovery first, while everything is still served: clients that have not yet
      // heard of the deregistration keep being answered instead of refused.
      await options.announce?.deregister();
      draining = true;
      health.setServing(false);
      log.info({ inFlight: inFlight.count }, "draining");
      listener.closeIdle();
      await inFlight.settled(config.SHUTDOWN_GRACE_MS);
      listener.stopAccepting();
      const abandoned = inFlight.count;
      options.abandon?.();
      await inFlight.settled(abandonGraceMs);
      await listener.closeAll(abandonGraceMs);
      options.release?.();
      log.info({ abandoned }, "stopped");
    },
  };
}
