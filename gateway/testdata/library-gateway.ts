// A gateway that routes the test contract's LibraryService at LIBRARY_SERVICE_URL, for the
// gateway's end-to-end tests and its benchmark.
import { z } from "zod";
import { runProcess } from "../../kit/run-process.ts";
import { gatewayConfigSchema } from "../config.ts";
import { createGatewayServer } from "../server.ts";
import { LibraryService } from "./gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";

const libraryGatewayConfigSchema = gatewayConfigSchema.extend({
  LIBRARY_SERVICE_URL: z.url(),
});

await runProcess("gateway", libraryGatewayConfigSchema, (config, log) =>
  createGatewayServer({
    config,
    log,
    targets: [{ service: LibraryService, url: config.LIBRARY_SERVICE_URL }],
  }),
);
