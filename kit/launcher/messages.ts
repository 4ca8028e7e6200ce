/**
 * The IPC messages between the launcher and the processes it starts. A child tells the
 * launcher when it listens (readiness, not a port probe that anything on the port could
 * answer); the launcher asks a child to drain without sending it a signal, so that a child
 * which got the terminal's SIGINT itself does not see the request as a second signal.
 */

/** Sent by a child once it listens and serves. */
export interface ListeningMessage {
  readonly type: "protomesh:listening";
  readonly port: number;
}

/** Sent by the launcher to ask a child to drain and exit; idempotent. */
export interface DrainMessage {
  readonly type: "protomesh:drain";
}

/** The message a child sends once it listens on `port`. */
export function listeningMessage(port: number): ListeningMessage {
  return { type: "protomesh:listening", port };
}

/** The message that asks a child to drain. */
export const drainMessage: DrainMessage = { type: "protomesh:drain" };

/** True if an IPC message is a child's "listening" report. */
export function isListening(message: unknown): message is ListeningMessage {
  return (message as ListeningMessage | null)?.type === "protomesh:listening";
}

/** True if an IPC message is the launcher's drain request. */
export function isDrain(message: unknown): message is DrainMessage {
  return (message as DrainMessage | null)?.type === drainMessage.type;
}
