import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { type PolledRevocationList, pollRevocations, type Revocation } from "./revocations.ts";

const lists: PolledRevocationList[] = [];
afterEach(() => {
  for (const list of lists.splice(0)) list.close();
});

/** A list polling `fetch` every `intervalMs`, closed after the test. */
function poll(fetch: (signal: AbortSignal) => Promise<readonly Revocation[]>, intervalMs = 60_000) {
  const list = pollRevocations({ fetch, intervalMs });
  lists.push(list);
  return list;
}

const ada = (revokedBeforeSec: number): Revocation => ({ userId: "ada", revokedBeforeSec });

describe("a polled revocation list", () => {
  it("refuses tokens issued before an account's revocation, and only that account's", async () => {
    const list = poll(async () => [ada(1_000)]);
    expect(await list.isRevoked("ada", 999)).toBe(true);
    expect(await list.isRevoked("ada", 1_000)).toBe(false);
    expect(await list.isRevoked("grace", 0)).toBe(false);
  });

  it("fails checks with Unavailable until a load has succeeded, and loads on a check, not only at the next poll", async () => {
    let up = false;
    let loads = 0;
    const list = poll(async () => {
      loads += 1;
      if (!up) throw new Error("connection refused");
      return [ada(1_000)];
    });
    const refused = await list.isRevoked("ada", 0).catch((err: unknown) => ConnectError.from(err));
    expect(refused).toMatchObject({ code: Code.Unavailable });
    const failedLoads = loads;
    up = true;
    // The poll is a minute away: a check soon after loads the list itself.
    await expect.poll(() => list.isRevoked("ada", 0).catch(() => "unavailable")).toBe(true);
    expect(loads).toBe(failedLoads + 1);
  });

  it("keeps the last list when a reload fails", async () => {
    let fail = false;
    const list = poll(async () => {
      if (fail) throw new Error("connection refused");
      return [ada(1_000)];
    });
    expect(await list.isRevoked("ada", 0)).toBe(true);
    fail = true;
    await list.reload();
    expect(await list.isRevoked("ada", 0)).toBe(true);
  });

  it("picks up a new revocation at the next poll", async () => {
    let revocations: Revocation[] = [];
    const list = poll(async () => revocations, 20);
    expect(await list.isRevoked("ada", 0)).toBe(false);
    revocations = [ada(1_000)];
    await expect.poll(() => list.isRevoked("ada", 0), { timeout: 1_000 }).toBe(true);
  });

  it("reloads after a load under way, so a revocation made meanwhile is seen", async () => {
    let release: (() => void) | undefined;
    let revocations: Revocation[] = [];
    const list = poll(async () => {
      const snapshot = revocations;
      if (release === undefined) await new Promise<void>((resolve) => (release = resolve));
      return snapshot;
    });
    await expect.poll(() => release).toBeDefined();
    revocations = [ada(1_000)];
    const reloaded = list.reload();
    release?.();
    await reloaded;
    expect(await list.isRevoked("ada", 0)).toBe(true);
  });

  it("bounds a load that never answers by its timeout", async () => {
    const list = pollRevocations({
      fetch: () => new Promise(() => {}),
      intervalMs: 60_000,
      timeoutMs: 50,
    });
    lists.push(list);
    // Without the timeout the check would wait for ever (and the test time out).
    await expect(list.isRevoked("ada", 0)).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("answers a check during a hung source after one load at most: ticks do not pile loads up", async () => {
    let loads = 0;
    const list = pollRevocations({
      fetch: () => {
        loads += 1;
        return new Promise(() => {});
      },
      intervalMs: 10,
      timeoutMs: 100,
    });
    lists.push(list);
    // Ticks every 10 ms, loads timing out every 100 ms: a queue would have grown by now.
    await expect.poll(() => loads, { timeout: 2_000 }).toBeGreaterThanOrEqual(3);
    const before = loads;
    await expect(list.isRevoked("ada", 0)).rejects.toMatchObject({ code: Code.Unavailable });
    expect(loads - before).toBeLessThanOrEqual(2);
  });
});
