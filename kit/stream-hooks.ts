/** Callbacks run when a response stream ends, with the error it ended with, if any. */
export interface StreamHooks {
  /** Turns an error thrown while streaming into the one the caller should see. */
  readonly mapError?: (err: unknown) => unknown;
  /** Runs once when the stream ends: finished, failed or abandoned by the consumer. */
  readonly onEnd?: (err: unknown) => void;
}

/** Passes a stream through unchanged, running the hooks when it ends. */
export async function* withStreamHooks<T>(
  source: AsyncIterable<T>,
  hooks: StreamHooks,
): AsyncIterable<T> {
  let failure: unknown;
  try {
    yield* source;
  } catch (err) {
    failure = hooks.mapError ? hooks.mapError(err) : err;
    throw failure;
  } finally {
    hooks.onEnd?.(failure);
  }
}
