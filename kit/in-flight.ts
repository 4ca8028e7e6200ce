/** Counts requests in progress, so that a draining server knows when it may close. */
export interface InFlight {
  readonly count: number;
  /** Counts a request until its response closes (finished, failed or abandoned). */
  track(res: { once(event: "close", listener: () => void): unknown }): void;
  /** Resolves when no request is in progress, or after `timeoutMs` at the latest. */
  settled(timeoutMs: number): Promise<void>;
}

/** Creates a counter of requests in progress. */
export function createInFlight(): InFlight {
  let count = 0;
  let onZero: (() => void) | undefined;
  return {
    get count() {
      return count;
    },
    track(res) {
      count++;
      res.once("close", () => {
        count--;
        if (count === 0) onZero?.();
      });
    },
    settled(timeoutMs) {
      if (count === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        onZero = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}
