import { Redis } from "ioredis";

/**
 * The real Redis to test against (`.ci/run` sets it), or undefined: `npm test` then uses the
 * in-process transport and skips what only Redis can show.
 */
export const testRedisUrl = process.env.TEST_REDIS_URL || undefined;

/** Deletes every key under a test run's prefix, so runs against a shared Redis leave nothing. */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await admin.del(...keys);
    } while (cursor !== "0");
  } finally {
    await admin.quit();
  }
}
