import { afterAll, beforeAll } from "vitest";

/**
 * Starts something before the calling test file's tests and closes it after them. The object
 * returned stands for the started thing from then on; using it earlier throws, naming `what`.
 */
export function useStarted<T extends { close(): Promise<void> }>(
  what: string,
  start: () => Promise<T>,
): T {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  });
  afterAll(async () => {
    await started?.close();
  });
  return new Proxy({} as T, {
    get(_, key) {
      if (started === undefined) throw new Error(`${what} is used before it started`);
      return Reflect.get(started, key);
    },
  });
}
