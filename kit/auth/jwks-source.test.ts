import { create } from "@bufbuild/protobuf";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { describe, expect, it, vi } from "vitest";
import { GetJwksResponseSchema, JwkSchema } from "../../gen/protomesh/user/v1/user_pb.ts";
import { createRemoteKeySource, createStaticKeySource, type JwkSetLike } from "./jwks-source.ts";

async function newJwk(kid: string, alg: "EdDSA" | "ES256" = "EdDSA"): Promise<JWK> {
  const { publicKey } = await generateKeyPair(alg);
  return { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
}

const k1 = await newJwk("k1");
const k2 = await newJwk("k2");
const k3 = await newJwk("k3", "ES256");

function withoutKid(jwk: JWK): JWK {
  const copy = { ...jwk };
  delete copy.kid;
  return copy;
}

/** A remote source over a mutable key set, with a hand-driven clock and a fetch counter. */
function harness(initial: JwkSetLike) {
  const state = { jwks: initial, clock: 0, fail: false };
  const fetchJwks = vi.fn(async () => {
    if (state.fail) throw new Error("user service unavailable");
    return state.jwks;
  });
  const log = { warn: vi.fn() };
  const keys = createRemoteKeySource({ fetchJwks, log, now: () => state.clock });
  return { state, fetchJwks, log, keys };
}

describe("remote key source", () => {
  it("fetches once and serves known kids from the cache", async () => {
    const { fetchJwks, keys } = harness({ keys: [k1, k3] });
    expect((await keys.getKey("k1", "EdDSA"))?.type).toBe("public");
    expect((await keys.getKey("k3", "ES256"))?.type).toBe("public");
    expect(await keys.getKey("k3", "EdDSA")).toBeUndefined();
    expect(fetchJwks).toHaveBeenCalledTimes(1);
  });

  it("refetches for unknown kids at most once per minRefetchMs", async () => {
    const { state, fetchJwks, keys } = harness({ keys: [k1] });
    await keys.getKey("k1", "EdDSA");
    // The first fetch counts: an unknown kid right after it waits for the interval.
    expect(await keys.getKey("bogus-0", "EdDSA")).toBeUndefined();
    expect(fetchJwks).toHaveBeenCalledTimes(1);
    state.clock += 10_000;
    expect(await keys.getKey("bogus-1", "EdDSA")).toBeUndefined();
    expect(fetchJwks).toHaveBeenCalledTimes(2);
    for (let i = 0; i < 20; i++) await keys.getKey(`bogus-${i}`, "EdDSA");
    state.clock += 9_999;
    await keys.getKey("bogus-x", "EdDSA");
    expect(fetchJwks).toHaveBeenCalledTimes(2);
    state.clock += 1;
    await keys.getKey("bogus-y", "EdDSA");
    expect(fetchJwks).toHaveBeenCalledTimes(3);
  });

  it("coalesces concurrent refetches into one", async () => {
    const { fetchJwks, keys } = harness({ keys: [k1] });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => keys.getKey(i === 0 ? "k1" : `bogus-${i}`, "EdDSA")),
    );
    expect(fetchJwks).toHaveBeenCalledTimes(1);
    expect(results[0]?.type).toBe("public");
    expect(results.slice(1).every((key) => key === undefined)).toBe(true);
  });

  it("picks up a key rotated in, and drops a key rotated out", async () => {
    const { state, fetchJwks, keys } = harness({ keys: [k1] });
    await keys.getKey("k1", "EdDSA");
    state.jwks = { keys: [k1, k2] };
    state.clock += 10_000;
    expect((await keys.getKey("k2", "EdDSA"))?.type).toBe("public");
    expect(fetchJwks).toHaveBeenCalledTimes(2);
    // Once the cache is old, a known kid is still answered at once while the set refreshes.
    state.jwks = { keys: [k2] };
    state.clock += 5 * 60_000;
    expect(await keys.getKey("k1", "EdDSA")).toBeDefined();
    await vi.waitFor(() => expect(fetchJwks).toHaveBeenCalledTimes(3));
    await vi.waitFor(async () => expect(await keys.getKey("k1", "EdDSA")).toBeUndefined());
    expect(fetchJwks).toHaveBeenCalledTimes(3);
  });

  it("keeps the last known keys when a fetch fails", async () => {
    const { state, fetchJwks, log, keys } = harness({ keys: [k1] });
    await keys.getKey("k1", "EdDSA");
    state.fail = true;
    state.clock += 10_000;
    expect(await keys.getKey("k2", "EdDSA")).toBeUndefined();
    expect(await keys.getKey("k1", "EdDSA")).toBeDefined();
    expect(log.warn).toHaveBeenCalledWith(
      expect.objectContaining({ knownKeys: 1 }),
      expect.stringContaining("keeping the last known keys"),
    );
    // Recovery: the next allowed fetch brings the rotated key in.
    state.fail = false;
    state.jwks = { keys: [k1, k2] };
    state.clock += 10_000;
    expect(await keys.getKey("k2", "EdDSA")).toBeDefined();
    expect(fetchJwks).toHaveBeenCalledTimes(3);
  });

  it("gives up on a fetch that hangs", async () => {
    const log = { warn: vi.fn() };
    const keys = createRemoteKeySource({
      fetchJwks: () => new Promise<JwkSetLike>(() => {}),
      fetchTimeoutMs: 20,
      log,
    });
    expect(await keys.getKey("k1", "EdDSA")).toBeUndefined();
    expect(log.warn).toHaveBeenCalledOnce();
  });

  it("takes a GetJwksResponse from the generated client as is", async () => {
    const jwks = create(GetJwksResponseSchema, {
      keys: [
        // Generated messages carry every field; an absent one (y of an OKP key) is "".
        create(JwkSchema, { kty: "OKP", crv: "Ed25519", x: k1.x ?? "", kid: "k1", alg: "EdDSA" }),
        create(JwkSchema, { kty: "EC", crv: "P-256", x: k3.x ?? "", y: k3.y ?? "", kid: "k3" }),
      ],
    });
    const keys = createRemoteKeySource({ fetchJwks: async () => jwks });
    expect(await keys.getKey("k1", "EdDSA")).toBeDefined();
    expect(await keys.getKey("k3", "ES256")).toBeDefined();
  });
});

describe("static key source", () => {
  it("skips keys that are unsupported, mislabelled, not for signing or duplicated", async () => {
    const log = { warn: vi.fn() };
    const keys = createStaticKeySource(
      {
        keys: [
          { ...k1, kid: "hs", kty: "oct", k: "c2VjcmV0" } as JWK,
          { ...k1, kid: "mislabelled", alg: "ES256" },
          { ...k1, kid: "enc", use: "enc" },
          { ...k1, kid: "ops", key_ops: ["encrypt"] },
          withoutKid(k1),
          { ...k1, kid: "bad-x", x: "AAAA" },
          k2,
          { ...k1, kid: "k2" },
        ],
      },
      { log },
    );
    for (const kid of ["hs", "mislabelled", "enc", "ops", "bad-x"]) {
      for (const alg of ["EdDSA", "ES256", "HS256"]) {
        expect(await keys.getKey(kid, alg)).toBeUndefined();
      }
    }
    expect(await keys.getKey("k2", "EdDSA")).toBeDefined();
    expect(log.warn).toHaveBeenCalledTimes(7);
  });
});
