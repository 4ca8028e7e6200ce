import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type PinnedProcess, startPinned } from "./processes.ts";

/** Where and how nginx runs for setup (c). */
export interface NginxOptions {
  /** The nginx binary. */
  readonly binary: string;
  /** A scratch directory for the configuration, pid file and temp paths (no root needed). */
  readonly dir: string;
  /** The library service's port, which nginx calls with Connect JSON. */
  readonly upstreamPort: number;
  /** Idle keep-alive connections nginx keeps to the service. */
  readonly keepalive: number;
  /** The CPU core nginx is pinned to. */
  readonly core: number;
}

/**
 * The configuration of setup (c), for one nginx process without a master (so that all its CPU
 * time is in one /proc entry): GET /v1/shelves/<id> becomes POST /…/GetShelf with the JSON
 * body {"shelfId":"<id>"} on an upstream keep-alive pool. The id pattern keeps the body valid
 * JSON without escaping.
 */
function nginxConfig(dir: string, port: number, upstreamPort: number, keepalive: number) {
  return `pid ${join(dir, "nginx.pid")};
error_log stderr warn;
events {
  worker_connections 1024;
}
http {
  access_log off;
  client_body_temp_path ${join(dir, "client_body")};
  proxy_temp_path ${join(dir, "proxy")};
  fastcgi_temp_path ${join(dir, "fastcgi")};
  uwsgi_temp_path ${join(dir, "uwsgi")};
  scgi_temp_path ${join(dir, "scgi")};
  upstream library {
    server 127.0.0.1:${upstreamPort};
    keepalive ${keepalive};
  }
  server {
    listen 127.0.0.1:${port};
    location ~ ^/v1/shelves/([A-Za-z0-9_-]+)$ {
      if ($request_method != GET) {
        return 405;
      }
      set $shelf $1;
      rewrite ^ /protomesh.gatewaytest.v1.LibraryService/GetShelf break;
      proxy_pass http://library;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_method POST;
      proxy_set_header Content-Type application/json;
      proxy_set_body '{"shelfId":"$shelf"}';
    }
  }
}
`;
}

/** Writes the configuration into `dir` and starts nginx in the foreground, pinned to a core. */
export function startNginx(options: NginxOptions): Promise<PinnedProcess> {
  const conf = join(options.dir, "nginx.conf");
  return startPinned({
    name: "nginx",
    core: options.core,
    command: (port) => {
      writeFileSync(conf, nginxConfig(options.dir, port, options.upstreamPort, options.keepalive));
      return [
        options.binary,
        "-p",
        options.dir,
        "-c",
        conf,
        "-g",
        "daemon off; master_process off; worker_processes 1;",
      ];
    },
  });
}
