import { Code } from "@connectrpc/connect";
import { type NodeRequest, type NodeResponse, pathOf } from "./node-http.ts";

/**
 * Answers a request for a path that no service serves, in the caller's own protocol:
 * gRPC and gRPC-Web get status UNIMPLEMENTED (12), Connect and plain HTTP a 404 JSON error.
 */
export function respondUnknownRoute(req: NodeRequest, res: NodeResponse): void {
  const path = pathOf(req);
  const message = `unknown method or path ${path}`;
  const contentType = req.headers["content-type"] ?? "";
  if (contentType.startsWith("application/grpc-web")) {
    // gRPC-Web trailers-only response: the status travels in the headers.
    res.writeHead(200, {
      "content-type": contentType.split(";")[0] ?? contentType,
      "grpc-status": String(Code.Unimplemented),
      "grpc-message": grpcMessage(message),
    });
    res.end();
    return;
  }
  if (contentType.startsWith("application/grpc")) {
    res.writeHead(200, { "content-type": "application/grpc" });
    res.addTrailers({
      "grpc-status": String(Code.Unimplemented),
      "grpc-message": grpcMessage(message),
    });
    res.end();
    return;
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message }));
}

/** Percent-encodes a grpc-message value as the gRPC HTTP/2 spec asks: only '%' and non-ASCII. */
function grpcMessage(text: string): string {
  return Array.from(new TextEncoder().encode(text), (byte) =>
    byte < 0x20 || byte > 0x7e || byte === 0x25
      ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
      : String.fromCharCode(byte),
  ).join("");
}
