import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll } from "vitest";
import { FileService } from "../../gen/protomesh/file/v1/file_pb.ts";
import { InferenceService } from "../../gen/protomesh/inference/v1/inference_pb.ts";
import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import { killAllProcesses, type StartedProcess, startProcess } from "./process.ts";

/** One of the four service processes, with what the tests need to know about it. */
export interface ServiceUnderTest {
  /** Short name, as in services/<name>/. */
  readonly name: string;
  /** The built entry, relative to dist/. */
  readonly entry: string;
  readonly service: DescService;
  /** A unary method with an empty-able request that needs a signed-in caller. */
  readonly protectedMethod: string;
}

/** The four protomesh services, each runnable as its own process. */
export const servicesUnderTest: readonly ServiceUnderTest[] = [
  { name: "user", service: UserService, protectedMethod: "GetMe" },
  { name: "task", service: TaskService, protectedMethod: "ListProjects" },
  { name: "file", service: FileService, protectedMethod: "ListFiles" },
  { name: "inference", service: InferenceService, protectedMethod: "ListModels" },
].map((s) => ({ ...s, entry: `services/${s.name}/main.js` }));

/** Starts every service process once for the calling test file; returns each one's URL by name. */
export function useServiceProcesses(): (name: string) => string {
  const processes = new Map<string, StartedProcess>();
  beforeAll(async () => {
    const started = await Promise.all(servicesUnderTest.map((s) => startProcess(s.entry)));
    servicesUnderTest.forEach((s, i) => {
      const process = started[i];
      if (process) processes.set(s.name, process);
    });
  });
  afterAll(killAllProcesses);
  return (name) => {
    const process = processes.get(name);
    if (!process) throw new Error(`the ${name} process did not start`);
    return process.url;
  };
}
