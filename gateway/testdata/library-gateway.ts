// A gateway that routes the test contract's LibraryService at LIBRARY_SERVICE_URL, for the
// gateway's end-to-end tests and its benchmark.
import { runProcess } from "../../kit/run-process.ts";
import { gatewayConfigSchema, urlListSchema } from "../config.ts";
import { createGatewayServer } from "../server.ts";
import { LibraryService } from "./gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";

const libraryGatewayConfigSchema = gatewayConfigSchema.extend({
  LIBRARY_SERVICE_URL: urlListSchema("http://127.0.0.1:50060"),
});

await runProcess("gateway", libraryGatewayConfigSchema, (config, log) =>
  createGatewayServer({
    config,
    log,
    targets: [{ service: LibraryService, urls: config.LIBRARY_SERVICE_URL }],
  }),
);
