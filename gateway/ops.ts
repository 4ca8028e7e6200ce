import type { Registry } from "prom-client";
import type { HealthState } from "../kit/health.ts";
import { createDocs } from "./docs/docs.ts";
import type { GatewayResponse } from "./exchange.ts";
import type { RouteTable } from "./routing/route-table.ts";

/** What the gateway's own endpoints report on. */
export interface OpsOptions {
  readonly health: Pick<HealthState, "serving">;
  readonly registry: Registry;
  readonly routes: RouteTable;
}

/**
 * Answers a GET of one of the gateway's own paths, or false at once for any other path.
 * Resolves once the response is written.
 */
export type ServeOps = (path: string, res: GatewayResponse) => Promise<void> | false;

/**
 * Creates the gateway's own endpoints: /healthz (the process is up), /readyz (it serves, 503
 * while it drains), /metrics (Prometheus) and the docs (/openapi.json of these routes, built
 * now, and Swagger UI on /docs).
 */
export function createOps({ health, registry, routes }: OpsOptions): ServeOps {
  const serveDocs = createDocs(routes);
  return (path, res) => {
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("ok\n");
    } else if (path === "/readyz") {
      res.writeHead(health.serving ? 200 : 503, { "content-type": "text/plain; charset=utf-8" });
      res.end(health.serving ? "ready\n" : "not ready\n");
    } else if (path === "/metrics") {
      return registry.metrics().then((body) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(body);
      });
    } else {
      return serveDocs(path, res);
    }
    return Promise.resolve();
  };
}
