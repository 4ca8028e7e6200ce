import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Log } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { withStreamHooks } from "./stream-hooks.ts";
import { traceIdOf } from "./trace-context.ts";

/**
 * Records every call: one log line with method, code, duration and trace id, and the call,
 * error and latency metrics. For streams, the call ends when the response stream ends.
 */
export function createObserveInterceptor(log: Log, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const service = req.method.parent.typeName;
    const method = req.method.name;
    const traceId = traceIdOf(req.header);
    metrics.inFlight.inc();
    const finish = (err: unknown) => {
      const durationMs = performance.now() - started;
      const code = err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
      metrics.inFlight.dec();
      metrics.calls.inc({ service, method, code });
      if (code !== "ok") metrics.errors.inc({ service, method, code });
      metrics.duration.observe({ service, method }, durationMs / 1000);
      const line = {
        method: `${service}/${method}`,
        protocol: req.header.get("content-type"),
        code,
        durationMs: Math.round(durationMs * 100) / 100,
        traceId,
      };
      const serverFault =
        err instanceof ConnectError &&
        [Code.Internal, Code.Unknown, Code.DataLoss, Code.Unavailable].includes(err.code);
      if (serverFault)
        log.warn({ ...line, message: (err as ConnectError).rawMessage }, "call failed");
      else log.info(line, "call");
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      finish(err);
      throw err;
    }
    if (!res.stream) {
      finish(undefined);
      return res;
    }
    return { ...res, message: withStreamHooks(res.message, { onEnd: finish }) };
  };
}
