import { readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { extname, join } from "node:path";
import type { RouteTable } from "../routing/route-table.ts";
import { createOpenApiDocument } from "./openapi.ts";
import { loadProtoComments } from "./proto-comments.ts";

/** The part of a response the docs write: both HTTP versions' responses fit it. */
export interface DocsResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: string | Uint8Array): unknown;
}

/**
 * Serves one GET request if its raw path is `/openapi.json` or under `/docs`, resolving once
 * answered; returns false at once, writing nothing, for any other path (the REST routes' GETs
 * pass by without a wait).
 */
export type ServeDocs = (path: string, res: DocsResponse) => Promise<void> | false;

const contentTypes: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".png": "image/png",
};

const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>protomesh API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css">
    <link rel="stylesheet" href="/docs/index.css">
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/swagger-initializer.js"></script>
  </body>
</html>
`;

// Replaces the package's initializer, which points at an example API on the internet.
const initializer = `window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
  });
});
`;

// The page loads nothing but the gateway's own files and calls nothing but the gateway.
const pageHeaders = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
};

/**
 * Creates the handler of `GET /openapi.json` (the document of the routes, built once, here)
 * and `GET /docs` (Swagger UI from the swagger-ui-dist package, served from disk, with an
 * initializer pointing at /openapi.json). Only files listed in the package's directory at
 * start-up are served, by exact name, so no path can reach another file.
 */
export function createDocs(routes: RouteTable): ServeDocs {
  const openApi = JSON.stringify(createOpenApiDocument(routes, { comments: loadProtoComments() }));
  const require = createRequire(import.meta.url);
  const absolutePath = require("swagger-ui-dist/absolute-path.js") as () => string;
  const root = absolutePath();
  const assets = new Map<string, string>();
  for (const name of readdirSync(root)) {
    if (contentTypes[extname(name)] !== undefined) assets.set(`/docs/${name}`, join(root, name));
  }
  const cache = new Map<string, Promise<Buffer>>();

  const send = async (file: string, res: DocsResponse) => {
    let body = cache.get(file);
    if (body === undefined) {
      body = readFile(file);
      cache.set(file, body);
      // A failed read is not remembered: the next request tries again.
      void body.catch(() => cache.delete(file));
    }
    const bytes = await body;
    res.writeHead(200, {
      "content-type": contentTypes[extname(file)] as string,
      // Not content-hashed names: cached for an hour, then revalidated.
      "cache-control": "public, max-age=3600",
      "content-length": String(bytes.byteLength),
      "x-content-type-options": "nosniff",
    });
    res.end(bytes);
  };

  return (path, res) => {
    if (path === "/openapi.json") {
      res.writeHead(200, {
        "content-type": "application/json",
        "cache-control": "no-cache",
      });
      res.end(openApi);
      return Promise.resolve();
    }
    if (path === "/docs" || path === "/docs/" || path === "/docs/index.html") {
      res.writeHead(200, {
        ...pageHeaders,
        "content-type": contentTypes[".html"] as string,
        "cache-control": "no-cache",
      });
      res.end(page);
      return Promise.resolve();
    }
    if (path === "/docs/swagger-initializer.js") {
      res.writeHead(200, {
        "content-type": contentTypes[".js"] as string,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
      });
      res.end(initializer);
      return Promise.resolve();
    }
    const file = assets.get(path);
    return file === undefined ? false : send(file, res);
  };
}
