import { AsyncResource } from "node:async_hooks";

type Bindable = (this: unknown, ...args: unknown[]) => unknown;

/**
 * AsyncResource#bind as Node.js defines it, less the `asyncResource` accessor it still puts on
 * every bound function (deprecated since Node.js 20: DEP0172).
 */
function bind(this: AsyncResource, fn: Bindable, thisArg?: unknown): Bindable {
  if (typeof fn !== "function") {
    throw Object.assign(new TypeError(`The "fn" argument must be of type function`), {
      code: "ERR_INVALID_ARG_TYPE",
    });
  }
  const resource = this;
  const bound =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : resource.runInAsyncScope.bind(resource, fn, thisArg);
  Object.defineProperty(bound, "length", { configurable: true, value: fn.length });
  return bound;
}

/**
 * Makes AsyncResource#bind (and AsyncResource.bind) stop defining the deprecated
 * `asyncResource` accessor on what they return; otherwise they work as before.
 *
 * node:http2 binds a function on every client request. With the accessor, a bound function that
 * is dropped at once still survives a young-generation collection, with all it captures (about
 * 1.9 KB a call, kit/async-bind.test.ts): its getter and setter are reached from V8's old
 * generation, which a scavenge treats as alive, garbage or not. Through them every finished
 * upstream stream, and all it holds, lived until the next full collection. Without them, the
 * gateway keeps about 40% less alive per scavenge (measured in BENCHMARKS.md).
 */
export function useLeanAsyncBind(): void {
  AsyncResource.prototype.bind = bind as AsyncResource["bind"];
}
