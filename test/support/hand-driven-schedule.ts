import type { Every } from "../../services/user/keys.ts";

/** A schedule whose tasks run only when a test says their interval has passed. */
export interface HandDrivenSchedule {
  /** Hand this where a timer would go. */
  readonly every: Every;
  /** Runs every scheduled task once, as if its interval had passed, and waits for them. */
  elapse(): Promise<void>;
}

/** Creates a schedule driven by the test instead of a timer. */
export function handDrivenSchedule(): HandDrivenSchedule {
  const tasks = new Set<() => Promise<void>>();
  return {
    every(_ms, task) {
      tasks.add(task);
      return () => tasks.delete(task);
    },
    async elapse() {
      await Promise.all([...tasks].map((task) => task()));
    },
  };
}
