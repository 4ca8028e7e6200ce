import { createRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { z } from "zod";
import {
  DeadLetterSchema,
  file_protomesh_events_v1_envelope,
} from "../../gen/protomesh/events/v1/envelope_pb.ts";
import { file_protomesh_file_v1_events } from "../../gen/protomesh/file/v1/events_pb.ts";
import { file_protomesh_inference_v1_events } from "../../gen/protomesh/inference/v1/events_pb.ts";
import { file_protomesh_user_v1_events } from "../../gen/protomesh/user/v1/events_pb.ts";
import { loadConfigOrExit } from "../config.ts";
import { createLogger } from "../log.ts";
import { createRedisTransport } from "./redis-transport.ts";

const usage = `usage: npm run jobs -- stats <stream> <group>
       npm run jobs -- dead <stream> [count]

Reads the Redis streams at REDIS_URL. Without Redis, events flow through a stream inside each
service process: see its /metrics (jobs_pending, jobs_dead_letter_length).`;

const schema = z.object({ REDIS_URL: z.url({ protocol: /^rediss?$/ }) });
const [command, stream, third] = process.argv.slice(2);
if (!stream || (command !== "stats" && command !== "dead") || (command === "stats" && !third)) {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
const config = loadConfigOrExit("jobs", schema, usage);

const log = createLogger({ name: "jobs", level: "warn", format: "json" });
const transport = createRedisTransport({ url: config.REDIS_URL, log });
// Every event type of the mesh, so that payloads print as JSON rather than bytes.
const registry = createRegistry(
  file_protomesh_events_v1_envelope,
  file_protomesh_user_v1_events,
  file_protomesh_file_v1_events,
  file_protomesh_inference_v1_events,
);
try {
  if (command === "stats") {
    const stats = await transport.stats(stream, third ?? "");
    process.stdout.write(`${JSON.stringify({ stream, group: third, ...stats })}\n`);
  } else {
    const count = third ? Number(third) : 20;
    for (const data of await transport.deadLetters(stream, count)) {
      const letter = fromBinary(DeadLetterSchema, data);
      const type = letter.envelope ? registry.getMessage(letter.envelope.type) : undefined;
      const payload =
        type && letter.envelope
          ? toJson(type, fromBinary(type, letter.envelope.payload))
          : undefined;
      const json = toJson(DeadLetterSchema, letter, { registry }) as Record<string, unknown>;
      process.stdout.write(`${JSON.stringify({ ...json, payload })}\n`);
    }
  }
} finally {
  await transport.close();
}
