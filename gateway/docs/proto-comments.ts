import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";

/** The comments of the contracts, by full name of the element they document. */
export type ProtoComments = ReadonlyMap<string, string>;

// Field numbers of the descriptor messages that source locations' paths walk.
const fileMessages = 4;
const fileEnums = 5;
const fileServices = 6;
const messageFields = 2;
const messageNested = 3;
const messageEnums = 4;
const enumValues = 2;
const serviceMethods = 2;

/** Where `npm run generate` writes the contracts with their comments (buf build). */
const contractsFile = join("gen", "contracts.binpb");

/**
 * Reads the leading comments of every service, method, message, field, enum and enum value of
 * the contracts, which the generated code does not carry, from the descriptor set that
 * `npm run generate` builds beside it. Empty when the file is missing.
 */
export function loadProtoComments(): ProtoComments {
  const file = findUp(dirname(fileURLToPath(import.meta.url)), contractsFile);
  if (file === undefined) return new Map();
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(file));
  const comments = new Map<string, string>();
  for (const proto of set.file) {
    const names = new Map<string, string>();
    const prefix = proto.package === "" ? "" : `${proto.package}.`;
    const walkEnum = (e: EnumDescriptorProto, scope: string, path: number[]) => {
      const name = `${scope}${e.name}`;
      names.set(path.join("."), name);
      for (const [i, v] of e.value.entries()) {
        names.set([...path, enumValues, i].join("."), `${name}.${v.name}`);
      }
    };
    const walkMessage = (m: DescriptorProto, scope: string, path: number[]) => {
      const name = `${scope}${m.name}`;
      names.set(path.join("."), name);
      for (const [i, f] of m.field.entries()) {
        names.set([...path, messageFields, i].join("."), `${name}.${f.name}`);
      }
      for (const [i, n] of m.nestedType.entries()) {
        walkMessage(n, `${name}.`, [...path, messageNested, i]);
      }
      for (const [i, e] of m.enumType.entries())
        walkEnum(e, `${name}.`, [...path, messageEnums, i]);
    };
    for (const [i, m] of proto.messageType.entries()) walkMessage(m, prefix, [fileMessages, i]);
    for (const [i, e] of proto.enumType.entries()) walkEnum(e, prefix, [fileEnums, i]);
    for (const [i, s] of proto.service.entries()) {
      const name = `${prefix}${s.name}`;
      names.set([fileServices, i].join("."), name);
      for (const [j, m] of s.method.entries()) {
        names.set([fileServices, i, serviceMethods, j].join("."), `${name}.${m.name}`);
      }
    }
    for (const location of proto.sourceCodeInfo?.location ?? []) {
      const name = names.get(location.path.join("."));
      const text = location.leadingComments.trim();
      if (name === undefined || text === "") continue;
      comments.set(name, text.replace(/\n /g, "\n"));
    }
  }
  return comments;
}

function findUp(dir: string, relative: string): string | undefined {
  const candidate = join(dir, relative);
  if (existsSync(candidate)) return candidate;
  const parent = dirname(dir);
  return parent === dir ? undefined : findUp(parent, relative);
}
