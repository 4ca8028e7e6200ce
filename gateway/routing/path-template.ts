/**
 * The path templates of `google.api.http` rules (see the HttpRule comment in
 * third_party/google/api/http.proto):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     FieldPath = IDENT { "." IDENT } ;
 *     Verb     = ":" LITERAL ;
 */

import { Code, ConnectError } from "@connectrpc/connect";

/** One segment of a template: a literal, `*` (exactly one segment) or `**` (any number). */
export type TemplateSegment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "wildcard" }
  | { readonly kind: "deep-wildcard" };

/** A variable of a template: the field path it binds and the segments it captures. */
export interface TemplateVariable {
  /** Field path in proto names, for example "book.name". */
  readonly fieldPath: string;
  /** Index of the first captured segment in `PathTemplate.segments`. */
  readonly start: number;
  /** Index after the last captured segment. */
  readonly end: number;
}

/** A parsed path template. */
export interface PathTemplate {
  /** The template as written in the contract. */
  readonly source: string;
  /** The segments, with variables flattened into the segments they capture. */
  readonly segments: readonly TemplateSegment[];
  readonly variables: readonly TemplateVariable[];
  /** The custom verb without its colon, or undefined. */
  readonly verb: string | undefined;
  /** Number of literal segments, for route precedence. */
  readonly literalCount: number;
  /** Whether the template ends with `**`, for route precedence. */
  readonly hasDeepWildcard: boolean;
  /**
   * A string equal for templates that match exactly the same paths, whatever their variable
   * names, for example "/v1/users/*" for "/v1/users/{id}".
   */
  readonly shape: string;
  /**
   * Matches a raw (still percent-encoded) request path, without query string, and returns
   * the value of each variable by field path, or undefined when the path does not match.
   * Throws a ConnectError (InvalidArgument) on an invalid percent-encoding.
   */
  match(rawPath: string): Map<string, string> | undefined;
  /** Whether a path of `count` segments (the verb's included in the last) can match at all. */
  fitsSegmentCount(count: number): boolean;
  /** Same as `match`, for a path already split (see splitPath), as a route table does once. */
  matchSplit(path: SplitPath): Map<string, string> | undefined;
}

/**
 * A raw request path split into its segments once, each decoded on first use and then kept,
 * so that trying many templates on one request costs one split and one decoding.
 */
export interface SplitPath {
  /** The raw (percent-encoded) segments after the leading "/". */
  readonly raw: readonly string[];
  /** The decoded segment at `index`; throws a ConnectError (InvalidArgument) when malformed. */
  decoded(index: number): string;
}

/** Splits a raw path that starts with "/"; see SplitPath. */
export function splitPath(rawPath: string): SplitPath {
  const raw = rawPath.slice(1).split("/");
  const decoded: (string | undefined)[] = [];
  return {
    raw,
    decoded(index) {
      let value = decoded[index];
      if (value === undefined) {
        value = decodeSegment(raw[index] ?? "");
        decoded[index] = value;
      }
      return value;
    },
  };
}

// RFC 3986 pchar without ":" (the verb separator), "=" (the variable separator), "*", and
// "%": literals are compared with decoded segments, so they are written decoded.
const literalChar = /[A-Za-z0-9\-._~!$&'()+,;@]/;
const identStart = /[A-Za-z_]/;
const identChar = /[A-Za-z0-9_]/;

/** Parses a path template; throws an Error saying what is wrong and where on invalid syntax. */
export function createPathTemplate(source: string): PathTemplate {
  return new TemplateParser(source).parse();
}

class TemplateParser {
  private pos = 0;
  private readonly segments: TemplateSegment[] = [];
  private readonly variables: TemplateVariable[] = [];

  constructor(private readonly source: string) {}

  parse(): PathTemplate {
    if (this.peek() !== "/") this.fail(`must start with "/"`);
    this.pos++;
    this.parseSegments(false);
    let verb: string | undefined;
    if (this.peek() === ":") {
      this.pos++;
      verb = this.parseLiteral('a verb after ":"');
    }
    if (this.pos < this.source.length) {
      this.fail(`unexpected "${this.peek()}"`);
    }
    const deepIndex = this.segments.findIndex((s) => s.kind === "deep-wildcard");
    if (deepIndex >= 0 && deepIndex !== this.segments.length - 1) {
      this.fail(`"**" must be the last segment`, false);
    }
    const seen = new Set<string>();
    for (const v of this.variables) {
      if (seen.has(v.fieldPath)) this.fail(`field "${v.fieldPath}" is bound twice`, false);
      seen.add(v.fieldPath);
    }
    return compileTemplate(this.source, this.segments, this.variables, verb);
  }

  private parseSegments(inVariable: boolean): void {
    for (;;) {
      this.parseSegment(inVariable);
      if (this.peek() !== "/") return;
      this.pos++;
    }
  }

  private parseSegment(inVariable: boolean): void {
    const c = this.peek();
    if (c === "*") {
      this.pos++;
      if (this.peek() === "*") {
        this.pos++;
        this.segments.push({ kind: "deep-wildcard" });
      } else {
        this.segments.push({ kind: "wildcard" });
      }
      return;
    }
    if (c === "{") {
      if (inVariable) this.fail("variables cannot be nested");
      this.parseVariable();
      return;
    }
    this.segments.push({ kind: "literal", value: this.parseLiteral("a segment") });
  }

  private parseVariable(): void {
    this.pos++; // "{"
    const idents = [this.parseIdent()];
    while (this.peek() === ".") {
      this.pos++;
      idents.push(this.parseIdent());
    }
    const start = this.segments.length;
    if (this.peek() === "=") {
      this.pos++;
      this.parseSegments(true);
    } else {
      this.segments.push({ kind: "wildcard" });
    }
    if (this.peek() !== "}") this.fail(`expected "}"`);
    this.pos++;
    this.variables.push({ fieldPath: idents.join("."), start, end: this.segments.length });
  }

  private parseIdent(): string {
    const begin = this.pos;
    if (!identStart.test(this.peek())) this.fail("expected a field name");
    while (identChar.test(this.peek())) this.pos++;
    return this.source.slice(begin, this.pos);
  }

  private parseLiteral(what: string): string {
    const begin = this.pos;
    while (literalChar.test(this.peek())) this.pos++;
    if (this.pos === begin) this.fail(`expected ${what}`);
    return this.source.slice(begin, this.pos);
  }

  private peek(): string {
    return this.source.charAt(this.pos);
  }

  private fail(problem: string, withPosition = true): never {
    const where = withPosition
      ? this.pos < this.source.length
        ? ` at position ${this.pos}`
        : " at the end"
      : "";
    throw new Error(`invalid path template "${this.source}": ${problem}${where}`);
  }
}

function compileTemplate(
  source: string,
  segments: readonly TemplateSegment[],
  variables: readonly TemplateVariable[],
  verb: string | undefined,
): PathTemplate {
  const hasDeepWildcard = segments.at(-1)?.kind === "deep-wildcard";
  const fixedCount = hasDeepWildcard ? segments.length - 1 : segments.length;
  const shape =
    "/" +
    segments
      .map((s) => (s.kind === "literal" ? s.value : s.kind === "wildcard" ? "*" : "**"))
      .join("/") +
    (verb === undefined ? "" : `:${verb}`);

  const fitsSegmentCount = (count: number) =>
    hasDeepWildcard ? count >= fixedCount : count === fixedCount;

  function matchSplit(path: SplitPath): Map<string, string> | undefined {
    let raw = path.raw;
    if (!fitsSegmentCount(raw.length)) return undefined;
    const last = raw.length - 1;
    // The segment at `last` without its verb, decoded.
    let lastValue: string | undefined;
    if (verb !== undefined) {
      // The verb follows the last ":" of the last segment; a colon inside an id of a
      // template without verb stays part of the id.
      const lastSegment = raw[last] ?? "";
      const colon = lastSegment.lastIndexOf(":");
      if (colon < 0 || decodeSegment(lastSegment.slice(colon + 1)) !== verb) return undefined;
      raw = [...raw.slice(0, last), lastSegment.slice(0, colon)];
      lastValue = decodeSegment(raw[last] ?? "");
    }
    const valueAt = (i: number) =>
      i === last && lastValue !== undefined ? lastValue : path.decoded(i);
    for (let i = 0; i < fixedCount; i++) {
      const segment = segments[i];
      const value = valueAt(i);
      if (value === "") return undefined;
      if (segment?.kind === "literal" && segment.value !== value) return undefined;
    }
    const bindings = new Map<string, string>();
    for (const v of variables) {
      const single = v.end - v.start === 1 && segments[v.start]?.kind === "wildcard";
      if (single) {
        // A single-segment variable is fully decoded: "%2F" is a "/" inside the value.
        bindings.set(v.fieldPath, valueAt(v.start));
        continue;
      }
      // A multi-segment variable keeps "%2F" encoded so that it never reads as a separator.
      const end = v.end === segments.length && hasDeepWildcard ? raw.length : v.end;
      bindings.set(v.fieldPath, raw.slice(v.start, end).map(decodeReserved).join("/"));
    }
    return bindings;
  }

  const match = (rawPath: string) =>
    rawPath.startsWith("/") ? matchSplit(splitPath(rawPath)) : undefined;

  const literalCount = segments.filter((s) => s.kind === "literal").length;
  return {
    source,
    segments,
    variables,
    verb,
    literalCount,
    hasDeepWildcard,
    shape,
    match,
    fitsSegmentCount,
    matchSplit,
  };
}

function decodeSegment(raw: string): string {
  if (!raw.includes("%")) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ConnectError(
      `invalid percent-encoding in path segment "${raw}": encode "%" as "%25"`,
      Code.InvalidArgument,
    );
  }
}

function decodeReserved(raw: string): string {
  return raw
    .split(/(%2[Ff])/)
    .map((part, i) => (i % 2 === 1 ? part : decodeSegment(part)))
    .join("");
}
