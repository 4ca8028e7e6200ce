/**
 * Hands each chunk of `content` to `take`, in order, waiting for each. Resolves with the error
 * that ended `content` early (a client that went away, a caller's bound), undefined when it
 * ended normally: what was taken until then is the caller's to keep. An error of `take` (the
 * store's own) rejects, once `content` is released.
 */
export async function feedContent(
  content: AsyncIterable<Uint8Array>,
  take: (chunk: Uint8Array) => Promise<void>,
): Promise<unknown> {
  const iterator = content[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await iterator.next();
    } catch (err) {
      return err;
    }
    if (next.done) return undefined;
    try {
      await take(next.value);
    } catch (err) {
      await iterator.return?.();
      throw err;
    }
  }
}
