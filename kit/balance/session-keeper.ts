// The HTTP/2 session to one instance, kept alive the way gRPC clients keep theirs (gRPC A8
// "client-side keepalive"): a PING every interval while calls are open, the session destroyed
// when one goes unanswered, and closed after a while without calls. connect-node's
// Http2SessionManager does the same for Connect transports, but only behind an async request()
// that copies every header object; the gateway opens its streams synchronously from a raw header
// list on its hot path, so both it and the services' balanced transport use this one instead.
import http2 from "node:http2";
import { http2WindowBytes } from "../listener.ts";
import type { Log } from "../log.ts";
import { markRefused } from "./retryable.ts";

/** How sessions to upstream instances notice a dead peer and let go of unused connections. */
export interface KeepalivePolicy {
  /** The time between PINGs while the session has calls open. */
  readonly pingIntervalMs: number;
  /** How long a PING may go unanswered before the session is destroyed. */
  readonly pingTimeoutMs: number;
  /** How long a session may stay without calls before it is closed. */
  readonly idleTimeoutMs: number;
}

/** The keep-alive of every upstream session unless configured otherwise. */
export const defaultKeepalive: KeepalivePolicy = {
  pingIntervalMs: 10_000,
  pingTimeoutMs: 5_000,
  idleTimeoutMs: 300_000,
};

/**
 * The session to one instance, opened (again) on demand. It also serves as the session manager
 * of connect-node's HTTP/2 client (`sessionProvider`).
 */
export interface SessionKeeper {
  /** The instance's origin, as connect-node's session manager names it. */
  readonly authority: string;
  /** Opens a stream on the live session (one is opened when there is none). */
  open(headers: http2.OutgoingHttpHeaders | readonly string[]): http2.ClientHttp2Stream;
  /** Opens a stream for connect-node's HTTP/2 client. */
  request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream>;
  /** Part of connect-node's session manager interface; PINGs here do not depend on reads. */
  notifyResponseByteRead(stream: http2.ClientHttp2Stream): void;
  /** The live session, for a caller that opens its streams itself (they keep it from idling). */
  session(): http2.ClientHttp2Session;
  /** Closes the session; calls in flight finish first. */
  close(): void;
}

interface Kept {
  readonly session: http2.ClientHttp2Session;
  /** Tells the keep-alive of a stream opened on the session. */
  readonly opened: (stream: http2.ClientHttp2Stream) => void;
}

/** Creates the kept-alive session to the instance at `baseUrl`. */
export function createSessionKeeper(
  baseUrl: string,
  options: { readonly keepalive: KeepalivePolicy; readonly log: Log },
): SessionKeeper {
  const { keepalive, log } = options;
  let current: Kept | undefined;

  function connect(): Kept {
    const session = http2.connect(baseUrl, { settings: { initialWindowSize: http2WindowBytes } });
    session.once("connect", () => session.setLocalWindowSize(2 * http2WindowBytes));
    // A session with no streams must not keep the process alive.
    session.unref();
    const forget = () => {
      if (current?.session === session) current = undefined;
    };
    // After GOAWAY the session takes no new streams: the next call opens a fresh one while
    // this one finishes the streams it has.
    session.once("goaway", forget);
    session.once("close", forget);
    session.on("error", (err) => {
      forget();
      log.warn({ upstream: baseUrl, err }, "upstream session failed");
    });
    const opened = keepAlive(session, keepalive, {
      onDead: () => {
        forget();
        log.warn(
          { upstream: baseUrl, pingTimeoutMs: keepalive.pingTimeoutMs },
          "upstream did not answer PING: session dropped",
        );
      },
      onIdle: forget,
    });
    current = { session, opened };
    return current;
  }

  function held(): Kept {
    if (current !== undefined && !current.session.closed && !current.session.destroyed) {
      return current;
    }
    return connect();
  }

  function open(headers: http2.OutgoingHttpHeaders | readonly string[]): http2.ClientHttp2Stream {
    const { session, opened } = held();
    // Node takes a flat raw list as it is; its typings only know header objects.
    const stream = session.request(headers as http2.OutgoingHttpHeaders);
    opened(stream);
    noteRefusal(stream);
    return stream;
  }

  return {
    authority: new URL(baseUrl).origin,
    open,
    request: (method, path, headers, requestOptions) => {
      const { session, opened } = held();
      const stream = session.request(
        { ...headers, ":method": method, ":path": path },
        requestOptions,
      );
      opened(stream);
      noteRefusal(stream);
      return Promise.resolve(stream);
    },
    notifyResponseByteRead: () => {},
    session: () => held().session,
    close() {
      current?.session.close();
      current = undefined;
    },
  };
}

/**
 * Marks the error of a stream the instance resets with REFUSED_STREAM, as a draining server
 * does, so that the retry rule knows the call never ran (kit/balance/retryable.ts). Node has set
 * the reset code by the time the stream emits its error.
 */
function noteRefusal(stream: http2.ClientHttp2Stream): void {
  stream.once("error", (err) => {
    if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) markRefused(err);
  });
}

/**
 * Keeps one session alive by its policy and returns what tells it of each stream opened on it:
 * PINGs while any stream is open, destroyed (after `onDead`) when one goes unanswered, closed
 * gracefully (after `onIdle`) once no stream has been open for the idle timeout.
 */
function keepAlive(
  session: http2.ClientHttp2Session,
  policy: KeepalivePolicy,
  events: { onDead(): void; onIdle(): void },
): (stream: http2.ClientHttp2Stream) => void {
  let open = 0;
  let pinging = false;
  let pingTimer: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;

  const idle = () => {
    events.onIdle();
    session.close();
  };
  const armIdle = () => {
    idleTimer = setTimeout(idle, policy.idleTimeoutMs).unref();
  };
  const armPing = () => {
    if (!pinging && open > 0) pingTimer = setTimeout(ping, policy.pingIntervalMs).unref();
  };

  function ping(): void {
    if (session.destroyed) return;
    pinging = true;
    const deadline = setTimeout(() => {
      events.onDead();
      session.destroy(new Error(`no PING answer within ${policy.pingTimeoutMs} ms`));
    }, policy.pingTimeoutMs).unref();
    session.ping((err) => {
      clearTimeout(deadline);
      pinging = false;
      // An error here is the session going away, which its own events report.
      if (err === null) armPing();
    });
  }

  const closed = () => {
    open--;
    if (open > 0) return;
    clearTimeout(pingTimer);
    armIdle();
  };

  armIdle();
  session.once("close", () => {
    clearTimeout(pingTimer);
    clearTimeout(idleTimer);
  });
  return (stream) => {
    open++;
    stream.once("close", closed);
    if (open > 1) return;
    clearTimeout(idleTimer);
    armPing();
  };
}
