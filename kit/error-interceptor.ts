import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Log } from "./log.ts";
import { withStreamHooks } from "./stream-hooks.ts";

/**
 * Makes sure only a ConnectError crosses the wire: anything else becomes Internal with a
 * generic message, and the original is logged with the method so it can be found.
 */
export function createErrorInterceptor(log: Log): Interceptor {
  return (next) => async (req) => {
    const convert = (err: unknown): ConnectError => {
      if (err instanceof ConnectError) return err;
      // A handler that lets an abort escape (fetch, a query) ends because the call's own
      // signal fired: report why the call was cancelled, not the secondary error.
      if (req.signal.aborted) return ConnectError.from(req.signal.reason);
      log.error(
        { err, method: `${req.method.parent.typeName}/${req.method.name}` },
        "unhandled error",
      );
      return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
    };
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: withStreamHooks(res.message, { mapError: convert }) };
    } catch (err) {
      throw convert(err);
    }
  };
}
