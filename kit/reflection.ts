import type { DescFile, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** What the reflection handler reads from a request; v1 and v1alpha requests both fit it. */
interface ReflectionRequest {
  readonly host: string;
  readonly messageRequest:
    | {
        case:
          | "fileByFilename"
          | "fileContainingSymbol"
          | "allExtensionNumbersOfType"
          | "listServices";
        value: string;
      }
    | {
        case: "fileContainingExtension";
        value: { readonly containingType: string; readonly extensionNumber: number };
      }
    | { case: undefined; value?: undefined };
}

/** The version-neutral payload of a response, i.e. its `message_response` oneof. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Everything reflection can answer, computed once when it is registered. */
interface ReflectionIndex {
  readonly services: readonly string[];
  readonly files: ReadonlyMap<string, DescFile>;
  readonly symbols: ReadonlyMap<string, DescFile>;
  readonly extensions: ReadonlyMap<string, DescFile>;
  readonly extensionNumbers: ReadonlyMap<string, readonly number[]>;
  readonly encoded: Map<DescFile, Uint8Array>;
}

const reflectionServices = [ServerReflectionV1, ServerReflectionV1Alpha] as const;

/**
 * Registers grpc.reflection.v1 and v1alpha on a router for the given services.
 * `extraFiles` are indexed too, for types that no listed service reaches.
 */
export function registerReflection(
  router: ConnectRouter,
  services: readonly DescService[],
  extraFiles: readonly DescFile[] = [],
): void {
  const index = createReflectionIndex([...services, ...reflectionServices], extraFiles);
  // One generic handler serves both versions: their messages have identical shapes, and the
  // handler echoes back whichever request type it was given.
  const serverReflectionInfo = <R extends ReflectionRequest>(requests: AsyncIterable<R>) =>
    answerStream(index, requests);
  router.service(ServerReflectionV1, { serverReflectionInfo });
  router.service(ServerReflectionV1Alpha, { serverReflectionInfo });
}

async function* answerStream<R extends ReflectionRequest>(
  index: ReflectionIndex,
  requests: AsyncIterable<R>,
): AsyncGenerator<{ validHost: string; originalRequest: R; messageResponse: ReflectionAnswer }> {
  for await (const request of requests) {
    yield {
      validHost: request.host,
      originalRequest: request,
      messageResponse: answer(index, request),
    };
  }
}

function answer(index: ReflectionIndex, request: ReflectionRequest): ReflectionAnswer {
  const { messageRequest } = request;
  switch (messageRequest.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return filesAnswer(index, index.files.get(messageRequest.value), messageRequest.value);
    case "fileContainingSymbol": {
      const symbol = stripDot(messageRequest.value);
      return filesAnswer(index, index.symbols.get(symbol), `symbol ${symbol}`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = messageRequest.value;
      const key = extensionKey(stripDot(containingType), extensionNumber);
      return filesAnswer(index, index.extensions.get(key), `extension ${key}`);
    }
    case "allExtensionNumbersOfType": {
      const baseTypeName = stripDot(messageRequest.value);
      const numbers = index.extensionNumbers.get(baseTypeName);
      if (numbers === undefined) return notFound(`message type ${baseTypeName}`);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName, extensionNumber: [...numbers] },
      };
    }
    case undefined:
      // An error response rather than a failed stream lets the client keep using the stream.
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "no message_request set" },
      };
  }
}

/**
 * Always sends the file with all its transitive dependencies, requested file first, so that
 * clients without a per-stream cache can build the types from a single response.
 */
function filesAnswer(
  index: ReflectionIndex,
  file: DescFile | undefined,
  what: string,
): ReflectionAnswer {
  if (file === undefined) return notFound(what);
  const fileDescriptorProto: Uint8Array[] = [];
  const seen = new Set<DescFile>();
  const visit = (f: DescFile): void => {
    if (seen.has(f)) return;
    seen.add(f);
    fileDescriptorProto.push(encode(index, f));
    for (const dep of f.dependencies) visit(dep);
  };
  visit(file);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
}

function encode(index: ReflectionIndex, file: DescFile): Uint8Array {
  let bytes = index.encoded.get(file);
  if (bytes === undefined) {
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    index.encoded.set(file, bytes);
  }
  return bytes;
}

function notFound(what: string): ReflectionAnswer {
  return {
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  };
}

function createReflectionIndex(
  services: readonly DescService[],
  extraFiles: readonly DescFile[],
): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) visit(dep);
  };
  for (const service of services) visit(service.file);
  for (const file of extraFiles) visit(file);

  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, DescFile>();
  const extensionNumbers = new Map<string, number[]>();
  // First registration wins, so a symbol defined twice resolves to the file that was seen first.
  const add = (name: string, file: DescFile): void => {
    if (!symbols.has(name)) symbols.set(name, file);
  };
  // Every known message gets an entry, so a type without extensions answers with an empty list
  // instead of NOT_FOUND.
  const numbersOf = (typeName: string): number[] => {
    let numbers = extensionNumbers.get(typeName);
    if (numbers === undefined) {
      numbers = [];
      extensionNumbers.set(typeName, numbers);
    }
    return numbers;
  };
  for (const file of files.values()) {
    for (const type of nestedTypes(file)) {
      add(type.typeName, file);
      switch (type.kind) {
        case "service":
          for (const method of type.methods) add(`${type.typeName}.${method.name}`, file);
          break;
        case "message":
          for (const field of type.fields) add(`${type.typeName}.${field.name}`, file);
          for (const oneof of type.oneofs) add(`${type.typeName}.${oneof.name}`, file);
          numbersOf(type.typeName);
          break;
        case "enum": {
          // Enum values are scoped as siblings of their enum, per protobuf's C++-style scoping.
          const scope = type.typeName.slice(0, type.typeName.lastIndexOf(".") + 1);
          for (const value of type.values) add(`${scope}${value.name}`, file);
          break;
        }
        case "extension":
          extensions.set(extensionKey(type.extendee.typeName, type.number), file);
          numbersOf(type.extendee.typeName).push(type.number);
          break;
      }
    }
  }
  for (const numbers of extensionNumbers.values()) numbers.sort((a, b) => a - b);

  const serviceNames = [...new Set(services.map((service) => service.typeName))];
  return {
    services: serviceNames,
    files,
    symbols,
    extensions,
    extensionNumbers,
    encoded: new Map(),
  };
}

function extensionKey(typeName: string, number: number): string {
  return `${typeName}#${number}`;
}

function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}
