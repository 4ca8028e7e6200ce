/** Counts requests in progress, so that a draining server knows when it may close. */
export interface InFlight {
  readonly count: number;
  /** Counts a request in progress; call `leave` once when its response has closed. */
  enter(): void;
  /** Counts a request's end (finished, failed or abandoned). */
  leave(): void;
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
    enter() {
      count++;
    },
    leave() {
      count--;
      if (count === 0) onZero?.();
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
