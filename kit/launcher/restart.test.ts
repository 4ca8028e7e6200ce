// The launcher as the supervisor of `npm start`: a process that crashes after start-up is
// restarted with backoff, and one that keeps crashing is given up.
import { once } from "node:events";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { killMeshes, listeningPids, meshEnv, startMesh, waitFor } from "../../test/support/mesh.ts";
import { within } from "../../test/support/settle.ts";

afterEach(killMeshes);

describe("npm start restarts crashed processes", () => {
  it("restarts the task service after SIGKILL: later calls through the gateway succeed", {
    timeout: 120_000,
  }, async () => {
    const env = await meshEnv({
      MESH_RESTART_BACKOFF_MS: "200",
      LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
    });
    const mesh = startMesh(env);
    await mesh.ready();
    const gateway = `http://127.0.0.1:${env.GATEWAY_PORT}`;
    const json = { "content-type": "application/json" };
    const post = (path: string, body: unknown, headers = {}) =>
      fetch(`${gateway}${path}`, {
        method: "POST",
        headers: { ...json, ...headers },
        body: JSON.stringify(body),
      });
    const credentials = { email: "restart@example.com", password: "correct horse battery" };
    await post("/v1/auth/register", { ...credentials, displayName: "R" });
    const login = (await (await post("/v1/auth/login", credentials)).json()) as {
      accessToken: string;
    };
    const auth = { authorization: `Bearer ${login.accessToken}` };
    expect((await post("/v1/projects", { name: "before" }, auth)).status).toBe(200);

    const [pid] = listeningPids(mesh.output(), "task");
    process.kill(pid as number, "SIGKILL");
    await waitFor(
      () => listeningPids(mesh.output(), "task").length === 2,
      60_000,
      "the task service to listen again",
    );
    expect(mesh.output()).toContain("mesh | task exited (SIGKILL); restarting in 200 ms");

    await expect
      .poll(async () => (await post("/v1/projects", { name: "after" }, auth)).status, {
        timeout: 30_000,
        interval: 200,
      })
      .toBe(200);
    const task = mesh.status().find((p) => p.name === "task");
    expect(task).toMatchObject({ state: "running", restarts: 1, lastExit: { signal: "SIGKILL" } });
    expect(task?.pid).toBe(listeningPids(mesh.output(), "task")[1]);
  });

  it("gives up on a process that keeps crashing and stops the mesh with exit 1", {
    timeout: 120_000,
  }, async () => {
    const env = await meshEnv({
      MESH_RESTART_BACKOFF_MS: "400",
      MESH_RESTART_BACKOFF_MAX_MS: "800",
      MESH_RESTART_RETRIES: "3",
    });
    const mesh = startMesh(env);
    await mesh.ready();
    const [pid] = listeningPids(mesh.output(), "task");
    process.kill(pid as number, "SIGKILL");
    await waitFor(() => mesh.output().includes("mesh | task exited (SIGKILL)"), 10_000);
    // Its port taken from now on, every restart of the task service fails at once.
    const squatter = net.createServer().listen(Number(env.TASK_PORT), "127.0.0.1");
    await once(squatter, "listening");
    try {
      expect(await within(mesh.exit, 60_000, "the launcher's exit")).toBe(1);
    } finally {
      squatter.close();
    }
    const output = mesh.output();
    for (const [attempt, delay] of [
      [1, 400],
      [2, 800],
      [3, 800],
    ]) {
      expect(output).toContain(`restarting in ${delay} ms (attempt ${attempt} of 3)`);
    }
    expect(output).toContain("task exited (code 1) and was restarted 3 times in a row");
    expect(output).toContain("giving up on it");
    const task = mesh.status().find((p) => p.name === "task");
    expect(task).toMatchObject({ state: "fatal", restarts: 3, lastExit: { code: 1 } });
    const user = await fetch(`http://127.0.0.1:${env.USER_PORT}/healthz`).catch(() => null);
    expect(user).toBeNull();
  });
});
