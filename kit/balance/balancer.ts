/** How the balancer treats instances that keep failing (outlier ejection). */
export interface EjectionPolicy {
  /** Consecutive server-side failures that eject an instance. */
  readonly consecutiveFailures: number;
  /** How long a first ejection lasts; each further ejection of the same instance doubles it. */
  readonly baseEjectionMs: number;
  /** The longest an ejection lasts. */
  readonly maxEjectionMs: number;
  /** The largest share of instances ejected at once (0–1); at least one always stays in. */
  readonly maxEjectedShare: number;
}

/** The ejection policy of every balancer unless configured otherwise. */
export const defaultEjectionPolicy: EjectionPolicy = {
  consecutiveFailures: 5,
  baseEjectionMs: 5_000,
  maxEjectionMs: 60_000,
  maxEjectedShare: 0.5,
};

/** How a call on an instance ended, for the instance's health. */
export type Outcome = "success" | "failure" | "neutral";

/** One call's hold on an instance: release it exactly once, saying how the call ended. */
export interface Lease<T> {
  readonly endpoint: T;
  release(outcome: Outcome): void;
}

/** What the balancer reports, for metrics and logs. */
export interface BalancerEvents<T> {
  /** An instance was ejected for `ms` after too many consecutive failures. */
  onEject?(endpoint: T, ms: number): void;
}

/** Client-side load balancing over the healthy instances of one service. */
export interface Balancer<T> {
  /** Replaces the set of instances, keeping the state of those that stay. */
  update(endpoints: readonly T[]): void;
  /**
   * Says whether an instance serves, as its health reports it: one that does not is never
   * picked until it serves again. Every instance serves until told otherwise. True when this
   * changed the instance's status.
   */
  setServing(endpoint: T, serving: boolean): boolean;
  /**
   * Picks an instance for a call: of two random serving instances not ejected (and not in
   * `avoid`, if others remain), the one with fewer calls in flight. Undefined when there is none.
   */
  pick(avoid?: ReadonlySet<T>): Lease<T> | undefined;
  /** The instances, with their calls in flight, whether they are ejected now and serve. */
  snapshot(): { endpoint: T; inFlight: number; ejected: boolean; serving: boolean }[];
}

interface State<T> {
  readonly endpoint: T;
  inFlight: number;
  consecutiveFailures: number;
  ejections: number;
  ejectedUntil: number;
  serving: boolean;
}

/**
 * Creates a power-of-two-choices balancer on calls in flight, with outlier ejection: an
 * instance that fails `consecutiveFailures` calls in a row is left out for a time that doubles
 * with each ejection (up to a maximum), never more than `maxEjectedShare` of the instances at
 * once. A success resets its count; an instance back from ejection gets the time it was out.
 */
export function createBalancer<T>(
  options: {
    readonly ejection?: EjectionPolicy;
    readonly events?: BalancerEvents<T>;
    readonly now?: () => number;
    readonly random?: () => number;
  } = {},
): Balancer<T> {
  const ejection = options.ejection ?? defaultEjectionPolicy;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  let states: State<T>[] = [];

  const isEjected = (s: State<T>, at: number) => s.ejectedUntil > at;

  function release(state: State<T>, outcome: Outcome): void {
    state.inFlight--;
    if (outcome === "success") {
      state.consecutiveFailures = 0;
      return;
    }
    if (outcome === "neutral") return;
    state.consecutiveFailures++;
    if (state.consecutiveFailures < ejection.consecutiveFailures) return;
    const at = now();
    if (isEjected(state, at)) return;
    const ejected = states.filter((s) => isEjected(s, at)).length;
    const allowed = Math.min(
      states.length - 1,
      Math.floor(states.length * ejection.maxEjectedShare),
    );
    if (ejected >= allowed) return;
    const ms = Math.min(ejection.maxEjectionMs, ejection.baseEjectionMs * 2 ** state.ejections);
    state.ejections++;
    state.ejectedUntil = at + ms;
    state.consecutiveFailures = 0;
    options.events?.onEject?.(state.endpoint, ms);
  }

  return {
    update(endpoints) {
      const known = new Map(states.map((s) => [s.endpoint, s]));
      states = endpoints.map(
        (endpoint) =>
          known.get(endpoint) ?? {
            endpoint,
            inFlight: 0,
            consecutiveFailures: 0,
            ejections: 0,
            ejectedUntil: 0,
            serving: true,
          },
      );
    },
    setServing(endpoint, serving) {
      const state = states.find((s) => s.endpoint === endpoint);
      if (state === undefined || state.serving === serving) return false;
      state.serving = serving;
      return true;
    },
    pick(avoid) {
      const at = now();
      let candidates = states.filter((s) => s.serving && !isEjected(s, at));
      if (avoid !== undefined && avoid.size > 0) {
        const others = candidates.filter((s) => !avoid.has(s.endpoint));
        if (others.length > 0) candidates = others;
      }
      if (candidates.length === 0) return undefined;
      const a = candidates[Math.floor(random() * candidates.length)] as State<T>;
      const b = candidates[Math.floor(random() * candidates.length)] as State<T>;
      const chosen = b.inFlight < a.inFlight ? b : a;
      chosen.inFlight++;
      let released = false;
      return {
        endpoint: chosen.endpoint,
        release(outcome) {
          if (released) return;
          released = true;
          release(chosen, outcome);
        },
      };
    },
    snapshot() {
      const at = now();
      return states.map((s) => ({
        endpoint: s.endpoint,
        inFlight: s.inFlight,
        ejected: isEjected(s, at),
        serving: s.serving,
      }));
    },
  };
}
