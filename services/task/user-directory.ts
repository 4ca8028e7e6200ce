import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { failedOnBehalf, type OnBehalfOptions, onBehalfOf } from "./on-behalf.ts";

/** The one user-service call the directory makes (the generated client's GetUser). */
export interface UserLookup {
  getUser(request: { id: string }, options: OnBehalfOptions): Promise<unknown>;
}

/** Which users exist, as the user service says, remembered for a short while. */
export interface UserDirectory {
  /**
   * The ids among `ids` that name no user. The user service is asked on the caller's behalf
   * (their token, trace and remaining deadline go with the call); answers are cached.
   */
  unknownUsers(ids: readonly string[], ctx: HandlerContext): Promise<string[]>;
}

/** How long answers are kept, and how many. */
export interface UserDirectoryOptions {
  readonly ttlMs: number;
  readonly maxEntries?: number;
  /** The clock, in milliseconds; tests pass their own. */
  readonly now?: () => number;
}

/**
 * Creates a directory over the user service's GetUser. Both answers are cached for `ttlMs`:
 * user ids are random UUIDs the user service assigns, so an id that names nobody now will not
 * name somebody a moment later. Concurrent questions about one id share one call.
 */
export function createUserDirectory(
  users: UserLookup,
  options: UserDirectoryOptions,
): UserDirectory {
  const { ttlMs, maxEntries = 10_000, now = Date.now } = options;
  const known = new Map<string, { exists: boolean; until: number }>();
  const asking = new Map<string, Promise<boolean>>();

  function remember(id: string, exists: boolean): void {
    known.delete(id);
    // A Map iterates in insertion order: the first key is the oldest answer.
    if (known.size >= maxEntries) known.delete(known.keys().next().value as string);
    known.set(id, { exists, until: now() + ttlMs });
  }

  async function ask(id: string, ctx: HandlerContext): Promise<boolean> {
    try {
      await users.getUser({ id }, onBehalfOf(ctx));
      return true;
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return false;
      throw failedOnBehalf(`could not look up user ${id} in the user service`, err);
    }
  }

  function exists(id: string, ctx: HandlerContext): Promise<boolean> {
    const cached = known.get(id);
    if (cached !== undefined && cached.until > now()) return Promise.resolve(cached.exists);
    let pending = asking.get(id);
    if (pending === undefined) {
      pending = ask(id, ctx)
        .then((found) => {
          remember(id, found);
          return found;
        })
        .finally(() => asking.delete(id));
      asking.set(id, pending);
    }
    return pending;
  }

  return {
    async unknownUsers(ids, ctx) {
      const found = await Promise.all(ids.map((id) => exists(id, ctx)));
      return ids.filter((_, i) => !found[i]);
    },
  };
}
