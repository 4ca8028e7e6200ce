import type { z } from "zod";
import { useLeanAsyncBind } from "./async-bind.ts";
import { loadConfigOrExit, type ServerConfig } from "./config.ts";
import { isDrain, listeningMessage } from "./launcher/messages.ts";
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
 * gracefully on SIGTERM or SIGINT (exit 0). Under the launcher it reports "listening" and
 * takes drain requests over the IPC channel.
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
  let port: number;
  try {
    server = await build(config, log);
    port = await server.listen();
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
  let draining = false;
  let signalled = false;
  const drain = (reason: Record<string, unknown>) => {
    if (draining) return;
    draining = true;
    log.info(reason, "shutting down");
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // Ctrl-C signals the whole process group, so one drain request may reach a process twice:
  // as its own SIGINT and as the launcher's IPC request. Only a second signal forces the exit.
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal }, "second signal, exiting at once");
      process.exit(1);
    }
    signalled = true;
    drain({ signal });
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // Started by the launcher (npm start): when it goes away, however it ended, so does this
  // process, gracefully, rather than live on unsupervised.
  if (process.channel !== undefined) {
    process.channel.unref();
    process.on("message", (message) => {
      if (isDrain(message)) drain({ requestedBy: "launcher" });
    });
    process.once("disconnect", () => {
      log.warn("the launcher went away");
      drain({ requestedBy: "launcher", reason: "disconnected" });
    });
    process.send?.(listeningMessage(port));
  }
}
