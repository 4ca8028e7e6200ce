import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { millisSchema } from "../config.ts";
import type { Log } from "../log.ts";

/** Access tokens of one account issued before a time are refused. */
export interface Revocation {
  readonly userId: string;
  /** Tokens whose "iat" is earlier than this, in seconds since the epoch, are refused. */
  readonly revokedBeforeSec: number;
}

/** Says whether an access token was revoked after it was issued. */
export interface RevocationList {
  /** Whether a token of `userId` issued at `issuedAtSec` ("iat") is revoked. */
  isRevoked(userId: string, issuedAtSec: number): Promise<boolean>;
}

/** A revocation list kept up to date by polling its source. */
export interface PolledRevocationList extends RevocationList {
  /** Reloads the list now, after any load already under way; never rejects. */
  reload(): Promise<void>;
  /** Stops polling. */
  close(): void;
}

/** Settings of a process that refuses revoked tokens. */
export const revocationConfigShape = {
  /** How often the list of revoked accounts is reloaded: the bound on how long they stay in. */
  REVOCATION_POLL_MS: millisSchema.default(2_000),
};

/** Where the list and how often to reload it. */
export interface RevocationPollOptions {
  /** Every revocation in force, such as UserService.ListRevocations; should honour the signal. */
  readonly fetch: (signal: AbortSignal) => Promise<readonly Revocation[]>;
  readonly intervalMs: number;
  /** How long a load may take before it counts as failed; 5 s by default. */
  readonly timeoutMs?: number;
  readonly log?: Pick<Log, "warn" | "info">;
}

/** Least time between two loads that checks start while no load has succeeded yet. */
const firstLoadRetryMs = 250;

/**
 * Polls the revocations every intervalMs, from now on. A token can only be checked once a load
 * has succeeded: until then a check loads the list itself, and fails with Unavailable if that
 * load fails too, so a process that has just started cannot let a revoked token in. After that
 * a failed load keeps the last known list (logged once per run of failures), so an unreachable
 * user service does not lock out every account.
 */
export function pollRevocations(options: RevocationPollOptions): PolledRevocationList {
  const { fetch, intervalMs, timeoutMs = 5_000, log } = options;
  let revokedBefore: ReadonlyMap<string, number> | undefined;
  let failing = false;
  let latest: Promise<void> = Promise.resolve();
  let queued = 0;
  let attemptedAt = Number.NEGATIVE_INFINITY;
  const stopped = new AbortController();

  async function load(): Promise<void> {
    if (stopped.signal.aborted) return;
    attemptedAt = performance.now();
    const signal = AbortSignal.any([stopped.signal, AbortSignal.timeout(timeoutMs)]);
    try {
      // The race bounds a fetch that ignores its signal: a hung load must not hold back the
      // loads after it.
      const timedOut = new Promise<never>((_, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
      const revocations = await Promise.race([fetch(signal), timedOut]);
      revokedBefore = new Map(revocations.map((r) => [r.userId, r.revokedBeforeSec]));
      if (failing) log?.info({ revocations: revocations.length }, "revocations loaded again");
      failing = false;
    } catch (err) {
      if (stopped.signal.aborted) return;
      if (!failing) {
        log?.warn({ err, known: revokedBefore?.size }, "loading revocations failed; retrying");
      }
      failing = true;
    }
  }

  function reload(): Promise<void> {
    queued += 1;
    latest = latest.then(load).finally(() => {
      queued -= 1;
    });
    return latest;
  }

  void reload();
  // A tick while a load is still under way is skipped: a hung source cannot pile loads up.
  const timer = setInterval(() => {
    if (queued === 0) void reload();
  }, intervalMs);
  // Polling must not keep a process that is shutting down alive.
  timer.unref();

  return {
    async isRevoked(userId, issuedAtSec) {
      if (revokedBefore === undefined) {
        // The source was not up when polling began: a check loads the list rather than wait for
        // the next poll, with at most one load at a time and one per firstLoadRetryMs.
        const wait = attemptedAt + firstLoadRetryMs - performance.now();
        if (queued === 0 && wait > 0) await delay(wait);
        if (revokedBefore === undefined && queued === 0) void reload();
        await latest;
      }
      if (revokedBefore === undefined) {
        throw new ConnectError(
          "cannot check access tokens yet: the list of revoked accounts has not loaded",
          Code.Unavailable,
        );
      }
      return issuedAtSec < (revokedBefore.get(userId) ?? Number.NEGATIVE_INFINITY);
    },
    reload,
    close() {
      clearInterval(timer);
      stopped.abort();
    },
  };
}
