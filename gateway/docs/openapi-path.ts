import type { Route } from "../routing/route-table.ts";
import type { JsonSchema, SchemaSet } from "./json-schema.ts";
import type { OpenApiParameter } from "./openapi.ts";

/** The OpenAPI path of a route, before its parameters are named. */
export interface OpenApiPathShape {
  /** Equal for routes whose OpenAPI paths differ only in the names of their parameters. */
  readonly shape: string;
  /**
   * Names the path parameters, in order, after `names` when given (the names another route of
   * the same shape chose) or else after the fields they bind, and writes the path.
   */
  build(names?: readonly string[]): { path: string; parameters: OpenApiParameter[] };
}

type Slot =
  | { readonly kind: "literal"; readonly value: string }
  | {
      readonly kind: "parameter";
      readonly name: string;
      readonly schema: JsonSchema;
      /** Says what the parameter is, knowing every parameter's final name. */
      readonly describe: (nameOf: (slot: Slot) => string, self: Slot) => string | undefined;
    };

// The gateway keeps "%2F" encoded in a multi-segment value, so a client must send its slashes.
const slashNote =
  'Send "/" between segments as it is: an encoded "%2F" stays in the value as the three ' +
  'characters "%2F".';

/**
 * The OpenAPI form of a route's path template. A `{field}` variable is one parameter typed like
 * its field. A variable with a pattern (`{name=shelves/*}`) keeps the pattern's literal
 * segments in the path, with one string parameter per wildcard, so the path a client fills in
 * is the path the gateway matches. A `**` is one parameter whose value may hold slashes, and a
 * bare `*` outside a variable a parameter bound to no field.
 */
export function openApiPathOf(route: Route, schemas: SchemaSet): OpenApiPathShape {
  const { segments, variables, verb } = route.template;
  const slots: Slot[] = [];
  let bare = 0;
  for (let i = 0; i < segments.length; ) {
    const segment = segments[i];
    const variable = variables.find((v) => v.start === i);
    if (variable === undefined) {
      if (segment?.kind === "literal") {
        slots.push(segment);
      } else {
        bare++;
        const deep = segment?.kind === "deep-wildcard";
        slots.push({
          kind: "parameter",
          name: `wildcard_${bare}`,
          schema: { type: "string" },
          describe: () =>
            deep
              ? `Any path segments, bound to no field. ${slashNote}`
              : "Any one path segment, bound to no field.",
        });
      }
      i++;
      continue;
    }
    const { fieldPath } = variable;
    const inner = segments.slice(variable.start, variable.end);
    const leaf = route.pathFields.get(fieldPath)?.at(-1);
    if (inner.length === 1 && inner[0]?.kind === "wildcard" && leaf !== undefined) {
      slots.push({
        kind: "parameter",
        name: fieldPath,
        schema: schemas.field(leaf),
        describe: (nameOf, self) =>
          nameOf(self) === fieldPath ? undefined : `Sets \`${fieldPath}\`.`,
      });
      i = variable.end;
      continue;
    }
    const group: Slot[] = [];
    const wildcards = inner.filter((s) => s.kind !== "literal").length;
    let nth = 0;
    for (const s of inner) {
      if (s.kind === "literal") {
        group.push(s);
        continue;
      }
      const deep = s.kind === "deep-wildcard";
      nth++;
      group.push({
        kind: "parameter",
        name: wildcards === 1 ? fieldPath : `${fieldPath}_${nth}`,
        schema: { type: "string" },
        describe: (nameOf) => {
          const pattern = group
            .map((g) => (g.kind === "literal" ? g.value : `{${nameOf(g)}}`))
            .join("/");
          const what =
            inner.length === 1
              ? `Sets \`${fieldPath}\`.`
              : wildcards === 1
                ? `Sets \`${fieldPath}\` to "${pattern}".`
                : `A segment of \`${fieldPath}\`, which is set to "${pattern}".`;
          return deep ? `${what} One or more path segments. ${slashNote}` : what;
        },
      });
    }
    slots.push(...group);
    i = variable.end;
  }

  const suffix = verb === undefined ? "" : `:${verb}`;
  const shape = `/${slots.map((s) => (s.kind === "literal" ? s.value : "{}")).join("/")}${suffix}`;

  function build(names?: readonly string[]): { path: string; parameters: OpenApiParameter[] } {
    const finalNames = new Map<Slot, string>();
    const used = new Set<string>();
    for (const slot of slots) {
      if (slot.kind === "literal") continue;
      let name = names?.[finalNames.size] ?? slot.name;
      while (used.has(name)) name = `${name}_`;
      used.add(name);
      finalNames.set(slot, name);
    }
    const nameOf = (slot: Slot) => finalNames.get(slot) ?? "";
    const path = `/${slots.map((s) => (s.kind === "literal" ? s.value : `{${nameOf(s)}}`)).join("/")}${suffix}`;
    const parameters: OpenApiParameter[] = [];
    for (const slot of slots) {
      if (slot.kind === "literal") continue;
      const description = slot.describe(nameOf, slot);
      parameters.push({
        name: nameOf(slot),
        in: "path",
        required: true,
        schema: slot.schema,
        ...(description === undefined ? {} : { description }),
      });
    }
    return { path, parameters };
  }

  return { shape, build };
}
