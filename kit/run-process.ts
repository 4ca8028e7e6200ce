import type { z } from "zod";
import { useLeanAsyncBind } from "./async-bind.ts";
import { loadConfigOrExit, type ServerConfig } from "./config.ts";
import { createLogger, type Log } from "./log.ts";

/** Something a process runs until it is told to stop. */
export interface Runnable {
  /** Starts serving; resolves with the bound port. */
  listen(): Promise<number>;
  /** Stops gracefully. */
  close(): Promise<void>;
}

/**
 * Runs a server process: validates its configuration (exit 2 naming the bad variable),
 * builds and starts it (exit 1 with a clear message if it cannot listen), and stops it
 * gracefully on SIGTERM or SIGINT (exit 0).
 */
export async function runProcess<S extends z.ZodObject>(
  name: string,
  schema: S,
  build: (config: Readonly<z.infer<S>>, log: Log) => Promise<Runnable> | Runnable,
): Promise<void> {
  const config = loadConfigOrExit(name, schema) as Readonly<z.infer<S> & ServerConfig>;
  // Each HTTP/2 client call would otherwise keep its garbage past young collections.
  useLeanAsyncBind();
  const log = createLogger({ name, level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  let server: Runnable;
  try {
    server = await build(config, log);
    await server.listen();
  } catch (err) {
    const address = `${config.HOST}:${config.PORT}`;
    const reason =
      (err as NodeJS.ErrnoException).code === "EADDRINUSE"
        ? `port ${address} is already in use (set PORT to another port)`
        : `failed to start: ${(err as Error).message}`;
    log.fatal({ err }, reason);
    process.stderr.write(`${name}: ${reason}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal, exiting at once");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "shutting down");
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // Started by the launcher (npm start): when it goes away, however it ended, so does this
  // process, gracefully, rather than live on unsupervised.
  if (process.channel !== undefined) {
    process.channel.unref();
    process.once("disconnect", () => {
      log.warn("the launcher went away");
      stop("SIGTERM");
    });
  }
}
