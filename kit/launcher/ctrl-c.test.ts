// Ctrl-C in the terminal of `npm start`: SIGINT reaches the launcher and every process of its
// group at once, while clients have calls in flight through the gateway to the user service.
import { afterEach, describe, expect, it } from "vitest";
import {
  alivePids,
  killMeshes,
  meshEnv,
  meshPids,
  type StartedMesh,
  startMesh,
  waitFor,
} from "../../test/support/mesh.ts";

const email = "ctrl-c@example.com";
const getMe = "/protomesh.user.v1.UserService/GetMe";

afterEach(killMeshes);

/** A Connect JSON request body that sends its first byte now and the rest once `release` settles. */
function heldBody(release: Promise<void>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    async start(controller) {
      controller.enqueue(encoder.encode("{"));
      await release;
      controller.enqueue(encoder.encode("}"));
      controller.close();
    },
  });
}

/**
 * Starts the mesh in a process group of its own, as a terminal does, and makes `calls` GetMe
 * calls through the gateway from slow clients: each reaches the user service, which waits for
 * the rest of its body until `release()`. Each outcome is "<status> <body>" or "failed: …".
 */
async function meshWithCallsInFlight(calls: number) {
  const env = await meshEnv({
    RATE_LIMITS: "default=off,auth=off",
    RATE_LIMIT_ACCOUNT: "off",
    LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
  });
  const mesh = startMesh(env, { detached: true });
  await mesh.ready();
  const gateway = `http://127.0.0.1:${env.GATEWAY_PORT}`;
  const password = "correct horse battery";
  const json = { "content-type": "application/json" };
  const post = (path: string, body: unknown) =>
    fetch(`${gateway}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) });
  expect((await post("/v1/auth/register", { email, password, displayName: "C" })).status).toBe(200);
  const { accessToken } = (await (await post("/v1/auth/login", { email, password })).json()) as {
    accessToken: string;
  };
  const headers = { ...json, authorization: `Bearer ${accessToken}` };

  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const outcomes = Array.from({ length: calls }, () =>
    fetch(`${gateway}${getMe}`, {
      method: "POST",
      headers,
      body: heldBody(released),
      duplex: "half",
    } as RequestInit).then(
      async (res) => `${res.status} ${await res.text()}`,
      (err: unknown) => `failed: ${(err as Error).message}`,
    ),
  );
  // A call made after them, answered: the gateway has forwarded the earlier ones too.
  const probe = await fetch(`${gateway}${getMe}`, { method: "POST", headers, body: "{}" });
  expect(probe.status).toBe(200);
  return { mesh, release, outcomes: Promise.all(outcomes) };
}

/** What the terminal does on Ctrl-C: SIGINT to every process of the foreground group. */
function pressCtrlC(mesh: StartedMesh): void {
  process.kill(-(mesh.child.pid as number), "SIGINT");
}

/** The in-flight count a process logged when it started draining, once it has. */
async function drainingWith(mesh: StartedMesh, name: string): Promise<number> {
  const line = new RegExp(`^${name} +\\| \\{[^\\n]*"inFlight":(\\d+)[^\\n]*"msg":"draining"`, "m");
  await waitFor(() => line.test(mesh.output()), 10_000, `${name} to start draining`);
  return Number(line.exec(mesh.output())?.[1]);
}

describe("Ctrl-C on npm start", () => {
  it("drains every process once: the calls in flight through the gateway all complete", {
    timeout: 120_000,
  }, async () => {
    const calls = 50;
    const { mesh, release, outcomes } = await meshWithCallsInFlight(calls);
    pressCtrlC(mesh);
    // The signal found every call in flight at the user service (the probe may still count).
    expect(await drainingWith(mesh, "user")).toBeGreaterThanOrEqual(calls);
    await drainingWith(mesh, "gateway");
    release();

    const settled = await outcomes;
    const exitedAtOnce = [...mesh.output().matchAll(/^(\w+) +\| [^\n]*second signal/gm)];
    expect({
      failed: settled.filter((o) => !o.startsWith("200 ")),
      exitedAtOnce: exitedAtOnce.map((m) => m[1]),
    }).toEqual({ failed: [], exitedAtOnce: [] });
    expect(settled.filter((o) => o.includes(email))).toHaveLength(calls);
    expect(await mesh.exit).toBe(0);
  });

  it("stops at once on a second Ctrl-C during the drain, leaving no process behind", {
    timeout: 120_000,
  }, async () => {
    const { mesh, release, outcomes } = await meshWithCallsInFlight(5);
    const pids = meshPids(mesh.output());
    pressCtrlC(mesh);
    await drainingWith(mesh, "user");
    pressCtrlC(mesh);
    expect(await mesh.exit).toBe(1);
    release();
    expect((await outcomes).filter((o) => o.startsWith("200 "))).toEqual([]);
    await waitFor(
      () => alivePids(pids).length === 0,
      10_000,
      "every process of the mesh to be gone",
    );
  });
});
