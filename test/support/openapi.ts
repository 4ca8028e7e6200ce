import { Validator } from "@seriousme/openapi-schema-validator";
import type {
  OpenApiDocument,
  OpenApiOperation,
  OpenApiParameter,
} from "../../gateway/docs/openapi.ts";
import { openApiMethods } from "../../gateway/docs/openapi.ts";

/** One operation of a document with its path and HTTP method (upper case). */
export interface DocumentedOperation {
  readonly method: string;
  readonly path: string;
  readonly operation: OpenApiOperation;
}

/** Validates a document against the OpenAPI schema of its version; errors when invalid. */
export async function validateOpenApi(
  document: unknown,
): Promise<{ valid: boolean; version: string; errors?: unknown }> {
  const validator = new Validator();
  // The validator may annotate what it reads: give it a copy.
  const result = await validator.validate(structuredClone(document) as Record<string, unknown>);
  return { ...result, version: validator.version };
}

/** Every operation of the standard HTTP methods, in document order. */
export function operationsOf(document: OpenApiDocument): DocumentedOperation[] {
  const operations: DocumentedOperation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of openApiMethods) {
      const operation = item[method];
      if (operation !== undefined)
        operations.push({ method: method.toUpperCase(), path, operation });
    }
  }
  return operations;
}

/** The operation that calls an RPC ("Service_Method", "_1" for its first additional binding). */
export function operationById(document: OpenApiDocument, operationId: string): DocumentedOperation {
  const found = operationsOf(document).find((o) => o.operation.operationId === operationId);
  if (found === undefined) throw new Error(`no operation ${operationId}`);
  return found;
}

/** A parameter of an operation by location and name. */
export function parameterOf(
  operation: OpenApiOperation,
  where: "path" | "query",
  name: string,
): OpenApiParameter {
  const found = operation.parameters.find((p) => p.in === where && p.name === name);
  if (found === undefined) throw new Error(`${operation.operationId} has no ${where} "${name}"`);
  return found;
}

/** A valid text value for a parameter's schema, as a client would type it. */
export function sampleValue(document: OpenApiDocument, parameter: OpenApiParameter): string {
  let schema = parameter.schema;
  const ref = schema.$ref;
  if (typeof ref === "string")
    schema = document.components.schemas[ref.split("/").at(-1) ?? ""] ?? {};
  if (Array.isArray(schema.enum)) return String(schema.enum[0]);
  switch (schema.format) {
    case "date-time":
      return "2024-05-01T12:00:00Z";
    case "google-duration":
      return "1.5s";
    case "int64":
    case "uint64":
      return "42";
  }
  switch (schema.type) {
    case "integer":
      return "7";
    case "number":
      return "1.5";
    case "boolean":
      return "true";
  }
  return `sample-${parameter.name.replaceAll(".", "-")}`;
}

/** The operation's path with every path parameter set to its sample value, percent-encoded. */
export function samplePath(document: OpenApiDocument, operation: DocumentedOperation): string {
  return operation.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodeURIComponent(sampleValue(document, parameterOf(operation.operation, "path", name))),
  );
}
