import { describe, expect, it } from "vitest";
import { createBalancer, type EjectionPolicy } from "./balancer.ts";
import { createRetryBudget } from "./retry-budget.ts";

const policy: EjectionPolicy = {
  consecutiveFailures: 3,
  baseEjectionMs: 1000,
  maxEjectionMs: 3000,
  maxEjectedShare: 0.5,
};

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("power-of-two-choices balancer", () => {
  it("sends a call to the less busy of two instances", () => {
    const balancer = createBalancer<string>();
    balancer.update(["a", "b"]);
    // Hold a call on whichever instance the first pick chose.
    const busy = balancer.pick();
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 200; i++) {
      const lease = balancer.pick();
      counts[lease?.endpoint as "a" | "b"]++;
      lease?.release("success");
    }
    const idle = busy?.endpoint === "a" ? "b" : "a";
    // Whenever both candidates differ the idle one wins: it gets about 3/4 of the calls.
    expect(counts[idle]).toBeGreaterThan(120);
  });

  it("spreads calls over every instance when they are equally busy", () => {
    const balancer = createBalancer<string>();
    balancer.update(["a", "b", "c"]);
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const lease = balancer.pick();
      if (lease !== undefined) seen.add(lease.endpoint);
      lease?.release("success");
    }
    expect([...seen].sort()).toEqual(["a", "b", "c"]);
  });

  it("ejects an instance after consecutive failures, for a time that doubles, then takes it back", () => {
    const time = clock();
    const ejected: [string, number][] = [];
    const balancer = createBalancer<string>({
      ejection: policy,
      now: time.now,
      events: { onEject: (endpoint, ms) => ejected.push([endpoint, ms]) },
    });
    balancer.update(["a", "b"]);
    const failOn = (endpoint: string) => {
      for (let i = 0; i < policy.consecutiveFailures; i++) {
        const lease = balancer.pick(new Set(endpoint === "a" ? ["b"] : ["a"]));
        expect(lease?.endpoint).toBe(endpoint);
        lease?.release("failure");
      }
    };
    failOn("a");
    expect(ejected).toEqual([["a", 1000]]);
    for (let i = 0; i < 20; i++) {
      const lease = balancer.pick();
      expect(lease?.endpoint).toBe("b");
      lease?.release("success");
    }
    time.advance(1001);
    failOn("a");
    expect(ejected).toEqual([
      ["a", 1000],
      ["a", 2000],
    ]);
  });

  it("never ejects more than the allowed share, and a success resets the count", () => {
    const time = clock();
    const balancer = createBalancer<string>({ ejection: policy, now: time.now });
    balancer.update(["a", "b"]);
    for (let i = 0; i < 10; i++) {
      for (const endpoint of ["a", "b"]) {
        const lease = balancer.pick(new Set([endpoint === "a" ? "b" : "a"]));
        lease?.release("failure");
      }
    }
    // Half of two is one: the other instance stays whatever it does.
    expect(balancer.snapshot().filter((s) => s.ejected)).toHaveLength(1);

    const fresh = createBalancer<string>({ ejection: policy, now: time.now });
    fresh.update(["x"]);
    for (let i = 0; i < 10; i++) {
      const lease = fresh.pick();
      lease?.release(i % 2 === 0 ? "failure" : "success");
    }
    expect(fresh.snapshot()).toEqual([
      { endpoint: "x", inFlight: 0, ejected: false, serving: true },
    ]);
  });

  it("keeps the state of instances that stay when the set changes", () => {
    const balancer = createBalancer<string>();
    balancer.update(["a", "b"]);
    const held = balancer.pick();
    balancer.update(["a", "b", "c"]);
    const stayed = balancer.snapshot().find((s) => s.endpoint === held?.endpoint);
    expect(stayed?.inFlight).toBe(1);
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
  });
});

describe("retry budget", () => {
  it("allows retries up to the ratio of calls plus the floor, within the window", () => {
    const time = clock();
    const budget = createRetryBudget({ ratio: 0.2, minRetries: 2, windowMs: 1000 }, time.now);
    for (let i = 0; i < 50; i++) budget.recordCall();
    let granted = 0;
    while (budget.tryRetry()) granted++;
    expect(granted).toBe(12);
    // The window slides: old calls and retries no longer count.
    time.advance(1100);
    let later = 0;
    while (budget.tryRetry()) later++;
    expect(later).toBe(2);
  });
});

describe("instances' health in the balancer", () => {
  it("never picks an instance that does not serve, and picks it again once it serves", () => {
    const balancer = createBalancer<string>();
    balancer.update(["a", "b"]);
    balancer.setServing("b", false);
    const picks = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const lease = balancer.pick();
      if (lease !== undefined) picks.add(lease.endpoint);
      lease?.release("success");
    }
    expect([...picks]).toEqual(["a"]);
    balancer.setServing("b", true);
    for (let i = 0; i < 50; i++) {
      const lease = balancer.pick();
      if (lease !== undefined) picks.add(lease.endpoint);
      lease?.release("success");
    }
    expect([...picks].sort()).toEqual(["a", "b"]);
  });

  it("picks none when no instance serves, and keeps the status of an instance that stays", () => {
    const balancer = createBalancer<string>();
    balancer.update(["a"]);
    balancer.setServing("a", false);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(["a", "b"]);
    expect(balancer.snapshot().map((s) => [s.endpoint, s.serving])).toEqual([
      ["a", false],
      ["b", true],
    ]);
  });
});
