import type { MessageInitShape } from "@bufbuild/protobuf";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { FieldDescriptorProtoSchema, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { file_google_api_annotations } from "../gen/google/api/annotations_pb.ts";
import { file_google_api_httpbody } from "../gen/google/api/httpbody_pb.ts";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import type {
  ServerReflectionRequest,
  ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema as V1RequestSchema,
  ServerReflectionResponseSchema as V1ResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as V1AlphaRequestSchema,
  ServerReflectionResponseSchema as V1AlphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { registerReflection } from "./reflection.ts";

type RequestInit = MessageInitShape<typeof V1RequestSchema>;

const transport = createRouterTransport((router) => {
  registerReflection(
    router,
    [Health, ServerReflectionV1],
    [file_google_api_httpbody, file_google_api_annotations],
  );
});

async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

/** Sends all requests on one v1 stream and collects the responses. */
async function askV1(requests: readonly RequestInit[]): Promise<ServerReflectionResponse[]> {
  const client = createClient(ServerReflectionV1, transport);
  const responses: ServerReflectionResponse[] = [];
  for await (const response of client.serverReflectionInfo(each(requests))) {
    responses.push(response);
  }
  return responses;
}

/** Same over v1alpha; the wire formats match, so messages are converted through binary. */
async function askV1Alpha(requests: readonly RequestInit[]): Promise<ServerReflectionResponse[]> {
  const client = createClient(ServerReflectionV1Alpha, transport);
  const alphaRequests = requests.map((init) =>
    fromBinary(V1AlphaRequestSchema, toBinary(V1RequestSchema, create(V1RequestSchema, init))),
  );
  const responses: ServerReflectionResponse[] = [];
  for await (const response of client.serverReflectionInfo(each(alphaRequests))) {
    responses.push(fromBinary(V1ResponseSchema, toBinary(V1AlphaResponseSchema, response)));
  }
  return responses;
}

function files(response: ServerReflectionResponse | undefined): FileDescriptorProto[] {
  if (response?.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${JSON.stringify(response?.messageResponse)}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

// createFileRegistry throws on any missing dependency or unresolvable type name, which is what a
// client such as buf curl needs to build request and response types. Clients take the first file
// as the answer and the rest as its dependencies, so the registry is built the same way.
function registryOf(response: ServerReflectionResponse | undefined) {
  const [answer, ...dependencies] = files(response);
  if (answer === undefined) throw new Error("no files in response");
  return createFileRegistry(answer, (name) => dependencies.find((file) => file.name === name));
}

function errorCode(response: ServerReflectionResponse | undefined): number | undefined {
  return response?.messageResponse.case === "errorResponse"
    ? response.messageResponse.value.errorCode
    : undefined;
}

const symbol = (name: string): RequestInit => ({
  messageRequest: { case: "fileContainingSymbol", value: name },
});

describe.each([
  ["v1", askV1],
  ["v1alpha", askV1Alpha],
])("reflection %s", (_version, ask) => {
  it("answers many requests on one stream, echoing each request", async () => {
    const requests: RequestInit[] = [
      { host: "example.test", messageRequest: { case: "listServices", value: "*" } },
      symbol("grpc.health.v1.Health"),
      symbol("grpc.health.v1.Health.Check"),
      symbol("grpc.health.v1.HealthCheckResponse.ServingStatus"),
      symbol("grpc.health.v1.HealthCheckResponse.SERVING"),
      { messageRequest: { case: "fileByFilename", value: "grpc/health/v1/health.proto" } },
      symbol("grpc.health.v1.NoSuchThing"),
      symbol("grpc.health.v1.HealthCheckRequest"),
    ];
    const responses = await ask(requests);
    expect(responses).toHaveLength(requests.length);
    responses.forEach((response, i) => {
      const sent: ServerReflectionRequest = create(V1RequestSchema, requests[i]);
      expect(response.originalRequest).toEqual(sent);
      expect(response.validHost).toBe(sent.host);
    });

    const [list, service, method, nested, enumValue, byName, unknown, after] = responses;
    expect(list?.messageResponse.case).toBe("listServicesResponse");
    const names =
      list?.messageResponse.case === "listServicesResponse"
        ? list.messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names.toSorted()).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);

    for (const response of [service, method, nested, enumValue, byName, after]) {
      expect(files(response)[0]?.name).toBe("grpc/health/v1/health.proto");
      const registry = registryOf(response);
      const health = registry.getService("grpc.health.v1.Health");
      expect(health?.methods.map((m) => m.name)).toEqual(["Check", "List", "Watch"]);
      expect(health?.method.check?.output.typeName).toBe("grpc.health.v1.HealthCheckResponse");
      expect(registry.getMessage("grpc.health.v1.HealthCheckResponse")?.fields).toHaveLength(1);
      expect(
        registry.getEnum("grpc.health.v1.HealthCheckResponse.ServingStatus")?.values,
      ).toHaveLength(4);
    }

    expect(errorCode(unknown)).toBe(5);
  });

  it("answers NOT_FOUND for unknown files and extensions without ending the stream", async () => {
    const responses = await ask([
      { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      {
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 },
        },
      },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "no.such.Message" } },
      { messageRequest: { case: "listServices", value: "" } },
    ]);
    expect(responses.map(errorCode)).toEqual([5, 5, 5, undefined]);
  });

  it("sends well-known dependencies with a file that imports them", async () => {
    const [response] = await ask([
      { messageRequest: { case: "fileByFilename", value: "google/api/httpbody.proto" } },
    ]);
    expect(files(response).map((f) => f.name)).toEqual([
      "google/api/httpbody.proto",
      "google/protobuf/any.proto",
    ]);
    const body = registryOf(response).getMessage("google.api.HttpBody");
    expect(body?.field.extensions?.message?.typeName).toBe("google.protobuf.Any");
  });

  it("answers extension queries, with a complete descriptor.proto", async () => {
    const [numbers, byExtension, noExtensions, descriptor] = await ask([
      {
        messageRequest: {
          case: "allExtensionNumbersOfType",
          value: "google.protobuf.MethodOptions",
        },
      },
      {
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 },
        },
      },
      {
        messageRequest: {
          case: "allExtensionNumbersOfType",
          value: "grpc.health.v1.HealthCheckRequest",
        },
      },
      symbol("google.protobuf.FieldDescriptorProto.TYPE_STRING"),
    ]);
    expect(numbers?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [72295728] },
    });
    expect(noExtensions?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { extensionNumber: [] },
    });

    expect(files(byExtension).map((f) => f.name)).toEqual([
      "google/api/annotations.proto",
      "google/api/http.proto",
      "google/protobuf/descriptor.proto",
    ]);
    const http = registryOf(byExtension).getExtension("google.api.http");
    expect(http?.extendee.typeName).toBe("google.protobuf.MethodOptions");
    expect(http?.message?.typeName).toBe("google.api.HttpRule");

    // descriptor.proto is embedded in protobuf-es as a hand-trimmed "boot" object; the types it
    // keeps must still be complete.
    const field = registryOf(descriptor).getMessage("google.protobuf.FieldDescriptorProto");
    expect(field?.fields.map((f) => f.number)).toEqual(
      FieldDescriptorProtoSchema.fields.map((f) => f.number),
    );
  });
});
