import { Code, ConnectError } from "@connectrpc/connect";
import type { Database } from "../../kit/db/database.ts";
import type { Log } from "../../kit/log.ts";
import type { UserConfig } from "./config.ts";
import { User, type UserRow } from "./entities.ts";
import { decoyHash, verifyPassword } from "./passwords.ts";

/** Checks passwords against the stored hashes, with the failures of each address counted. */
export interface PasswordCheck {
  /**
   * The account with this email when `password` is its password, else undefined. Every try
   * counts against the address; once LOGIN_MAX_FAILURES have failed in a row, the address is
   * locked for LOGIN_LOCK_S and every try fails with ResourceExhausted.
   */
  confirm(email: string, password: string): Promise<UserRow | undefined>;
  /**
   * The signed-in caller's account when `password` is its password, counted as confirm()
   * counts; Unauthenticated ("wrong password") otherwise. The caller re-reads the account in
   * its transaction and compares the hash, so a password changed meanwhile is not taken.
   */
  confirmCaller(userId: string, password: string): Promise<UserRow>;
}

/** The answer to a wrong password re-entered by a signed-in caller. */
export const wrongPassword = () => new ConnectError("wrong password", Code.Unauthenticated);

/**
 * Creates the check that Login, ChangePassword and DeleteMe share, so that a stolen access
 * token cannot guess its account's password any faster than a login can.
 */
export function createPasswordCheck(db: Database, config: UserConfig, log: Log): PasswordCheck {
  /**
   * Counts a try for an address before its password is checked, atomically, so that
   * concurrent tries cannot all slip under the limit. Refuses a locked address, and locks
   * it when the tries since the last success exceed the limit.
   */
  async function admitAttempt(email: string): Promise<void> {
    const em = db.fork();
    const [row] = await em.execute<{ failures: number; locked_until: Date | string | null }[]>(
      `insert into login_throttle (email, failures) values (?, 1)
       on conflict (email) do update set failures = login_throttle.failures + 1
       returning failures, locked_until`,
      [email],
    );
    const now = Date.now();
    let lockedUntil = row?.locked_until ? new Date(row.locked_until).getTime() : 0;
    if (lockedUntil <= now && (row?.failures ?? 0) > config.LOGIN_MAX_FAILURES) {
      lockedUntil = now + config.LOGIN_LOCK_S * 1000;
      await em.execute("update login_throttle set failures = 0, locked_until = ? where email = ?", [
        new Date(lockedUntil),
        email,
      ]);
      log.warn({ email }, "login locked after repeated failures");
    }
    if (lockedUntil > now) {
      // Said for any address, registered or not, so it reveals nothing about accounts.
      const wait = Math.ceil((lockedUntil - now) / 1000);
      throw new ConnectError(
        `too many failed logins; try again in ${wait} s`,
        Code.ResourceExhausted,
      );
    }
  }

  async function confirm(email: string, password: string): Promise<UserRow | undefined> {
    await admitAttempt(email);
    const em = db.fork();
    const user = await em.findOne(User, { email });
    // An unknown address is checked against a decoy hash, so both failures take as long.
    const matches = await verifyPassword(user?.passwordHash ?? decoyHash, password);
    // A failure stays counted; a success clears the address's count.
    if (!user || !matches) return undefined;
    await em.execute("delete from login_throttle where email = ?", [email]);
    return user;
  }

  return {
    confirm,
    async confirmCaller(userId, password) {
      const account = await db.fork().findOne(User, { id: userId }, { fields: ["email"] });
      const user = account && (await confirm(account.email, password));
      if (!user) throw wrongPassword();
      return user;
    },
  };
}
