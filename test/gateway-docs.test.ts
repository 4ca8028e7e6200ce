// The gateway's OpenAPI document and interactive docs between real processes: the four services
// and a gateway, every documented operation called as documented, the Swagger UI page and its
// assets, and (with Chromium installed) "Try it out" in a real browser against the gateway of
// the test contract.
import { existsSync } from "node:fs";
import { request } from "node:http";
import { hasOption } from "@bufbuild/protobuf";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OpenApiDocument } from "../gateway/docs/openapi.ts";
import { http } from "../gen/google/api/annotations_pb.ts";
import { operationsOf, samplePath, validateOpenApi } from "./support/openapi.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./support/process.ts";
import { servicesUnderTest } from "./support/services.ts";

afterAll(killAllProcesses);

/** A GET sent with its path exactly as given: fetch would resolve "..", a client need not. */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the mesh's OpenAPI document and docs", () => {
  let gateway: StartedProcess;
  let document: OpenApiDocument;

  beforeAll(async () => {
    const user = await startProcess("services/user/main.js");
    const others = await Promise.all(
      ["task", "file", "inference"].map((name) =>
        startProcess(`services/${name}/main.js`, { env: { USER_SERVICE_URL: user.url } }),
      ),
    );
    const [task, file, inference] = others.map((p) => p.url);
    gateway = await startProcess("gateway/main.js", {
      env: {
        USER_SERVICE_URL: user.url,
        TASK_SERVICE_URL: task ?? "",
        FILE_SERVICE_URL: file ?? "",
        INFERENCE_SERVICE_URL: inference ?? "",
      },
    });
    const res = await fetch(`${gateway.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    document = (await res.json()) as OpenApiDocument;
  });

  it("serves a valid OpenAPI 3.1 document listing every annotated route of the four services", async () => {
    expect(await validateOpenApi(document)).toMatchObject({ valid: true, version: "3.1" });
    const documented = operationsOf(document).map((o) => o.operation.operationId);
    const annotated = servicesUnderTest.flatMap(({ service }) =>
      service.methods.filter((m) => hasOption(m, http)).map((m) => `${service.name}_${m.name}`),
    );
    expect(annotated.length).toBeGreaterThan(40);
    expect(documented.sort()).toEqual(annotated.sort());
    expect(document.paths["/v1/auth/register"]?.post?.security).toEqual([]);
  });

  it("documents only operations that answer: none is 404 or 405", async () => {
    const operations = operationsOf(document);
    for (const op of operations) {
      const url = `${gateway.url}${samplePath(document, op)}`;
      const type = Object.keys(op.operation.requestBody?.content ?? {})[0];
      const res = await fetch(url, {
        method: op.method,
        ...(type === undefined ? {} : { headers: { "content-type": type }, body: "{}" }),
      });
      await res.arrayBuffer();
      const what = `${op.method} ${op.path} answered ${res.status}`;
      expect([404, 405], what).not.toContain(res.status);
      // Without a token, a protected route is refused at the edge; a WebSocket route first
      // asks for the upgrade.
      if (op.operation["x-protomesh-websocket"]) expect(res.status, what).toBe(426);
      else if (op.operation.security.length > 0) expect(res.status, what).toBe(401);
    }
  });

  it("serves the docs page and the Swagger UI assets from the gateway itself", async () => {
    for (const path of ["/docs", "/docs/"]) {
      const page = await fetch(`${gateway.url}${path}`);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
      const html = await page.text();
      expect(html).toContain('src="/docs/swagger-ui-bundle.js"');
      expect(html).not.toMatch(/https?:\/\//);
    }
    const assets: [string, string][] = [
      ["/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
      ["/docs/swagger-ui.css", "text/css; charset=utf-8"],
      ["/docs/favicon-32x32.png", "image/png"],
      ["/docs/swagger-initializer.js", "text/javascript; charset=utf-8"],
    ];
    for (const [path, type] of assets) {
      const res = await fetch(`${gateway.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      expect((await res.arrayBuffer()).byteLength, path).toBeGreaterThan(0);
    }
    const initializer = await (await fetch(`${gateway.url}/docs/swagger-initializer.js`)).text();
    expect(initializer).toContain('url: "/openapi.json"');
  });

  it.each([
    "/docs/../package.json",
    "/docs/../../../../etc/passwd",
    "/docs/%2e%2e/package.json",
    "/docs/%2E%2E%2Fpackage.json",
    "/docs/..%2f..%2fpackage.json",
    "/docs//etc/passwd",
    "/docs/package.json",
    "/docs/README.md",
  ])("answers %s with 404, never a file outside the assets", async (path) => {
    const { status, body } = await rawGet(gateway.url, path);
    expect(status).toBe(404);
    expect(body).not.toContain('"name"');
    expect(body).not.toContain("root:");
  });
});

describe.skipIf(!existsSync("/usr/bin/chromium"))(
  "Swagger UI in headless Chromium (skipped where /usr/bin/chromium is not installed)",
  () => {
    let gateway: StartedProcess;

    beforeAll(async () => {
      const library = await startProcess("gateway/testdata/library-server.js");
      gateway = await startProcess("gateway/testdata/library-gateway.js", {
        env: { LIBRARY_SERVICE_URL: library.url },
      });
    });

    it("calls a public operation with Try it out and shows its 200 response", async () => {
      const browser = await chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
      try {
        const page = await browser.newPage();
        const problems: string[] = [];
        page.on("pageerror", (err) => problems.push(err.message));
        page.on("console", (message) => {
          if (message.type() === "error") problems.push(message.text());
        });
        await page.goto(`${gateway.url}/docs`);
        const operation = page
          .locator(".opblock-get")
          .filter({ has: page.locator('[data-path="/v1/shelves/{shelf_id}"]') });
        await operation.locator(".opblock-summary").click();
        await operation.getByRole("button", { name: "Try it out" }).click();
        await operation.locator('input[placeholder="shelf_id"]').fill("s-42");
        await operation.getByRole("button", { name: "Execute" }).click();

        const response = operation.locator(".live-responses-table tbody .response");
        const status = response.locator(".response-col_status");
        await status.waitFor({ timeout: 15_000 });
        expect((await status.textContent())?.trim()).toBe("200");
        const body = await response.locator(".response-col_description pre").first().textContent();
        expect(JSON.parse(body ?? "")).toEqual({ id: "s-42", theme: "poetry" });
        expect(await operation.locator(".request-url pre").textContent()).toBe(
          `${gateway.url}/v1/shelves/s-42`,
        );
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  },
);
