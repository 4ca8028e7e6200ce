// Ctrl-C in the terminal of `npm start`: SIGINT reaches the launcher and every process of its
// group at once, while clients have calls in flight through the gateway to the user service.
import { afterEach, describe, expect, it } from "vitest";
import { killMeshes, meshEnv, startMesh, waitFor } from "../../test/support/mesh.ts";

const calls = 50;
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

describe("Ctrl-C on npm start", () => {
  it("drains every process once: the calls in flight through the gateway all complete", {
    timeout: 120_000,
  }, async () => {
    const env = await meshEnv({ RATE_LIMITS: "default=off,auth=off", RATE_LIMIT_ACCOUNT: "off" });
    const mesh = startMesh(env, { detached: true });
    await mesh.ready();
    const gateway = `http://127.0.0.1:${env.GATEWAY_PORT}`;

    const email = "ctrl-c@example.com";
    const password = "correct horse battery";
    const json = { "content-type": "application/json" };
    const post = (path: string, body: unknown) =>
      fetch(`${gateway}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) });
    expect((await post("/v1/auth/register", { email, password, displayName: "C" })).status).toBe(
      200,
    );
    const { accessToken } = (await (await post("/v1/auth/login", { email, password })).json()) as {
      accessToken: string;
    };
    const headers = { ...json, authorization: `Bearer ${accessToken}` };

    // Slow clients: each call reaches the user service, which waits for the rest of its body.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const inFlight = Array.from({ length: calls }, () =>
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

    // What the terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    process.kill(-(mesh.child.pid as number), "SIGINT");
    const draining = (name: string) =>
      new RegExp(`^${name} +\\| \\{[^\\n]*"inFlight":(\\d+)[^\\n]*"msg":"draining"`, "m");
    await waitFor(() => draining("user").test(mesh.output()), 10_000);
    await waitFor(() => draining("gateway").test(mesh.output()), 10_000);
    // The signal found every call in flight at the user service.
    expect(Number(draining("user").exec(mesh.output())?.[1])).toBe(calls);
    release();

    const outcomes = await Promise.all(inFlight);
    const exitedAtOnce = [...mesh.output().matchAll(/^(\w+) +\| [^\n]*second signal/gm)];
    expect({
      failed: outcomes.filter((o) => !o.startsWith("200 ")),
      exitedAtOnce: exitedAtOnce.map((m) => m[1]),
    }).toEqual({ failed: [], exitedAtOnce: [] });
    expect(outcomes.filter((o) => o.includes(email))).toHaveLength(calls);
    expect(await mesh.exit).toBe(0);
  });
});
