import type { DescService, JsonValue } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { TaskService } from "../../gen/protomesh/task/v1/task_pb.ts";
import { UserService } from "../../gen/protomesh/user/v1/user_pb.ts";
import type { Route } from "../routing/route-table.ts";
import { createRouteTable } from "../routing/route-table.ts";
import { LibraryService } from "../testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import type { BindRequestOptions } from "./request-binding.ts";
import { bindRequest, deriveUpdateMask } from "./request-binding.ts";

/** A request as the gateway sees it: method, path with query, and the parsed JSON body. */
interface Request {
  method: string;
  url: string;
  body?: JsonValue;
  options?: BindRequestOptions;
}

function routeOf(services: DescService[], method: string, url: string) {
  const match = createRouteTable(services).match(method, url.split("?")[0] ?? "");
  if (match.kind !== "found") throw new Error(`${method} ${url}: ${match.kind}`);
  return match;
}

/** Binds a request to the test contract (or the given services) and returns the message as JSON. */
function bind(request: Request, services: DescService[] = [LibraryService]): JsonValue {
  const { route, bindings } = routeOf(services, request.method, request.url);
  const query = new URLSearchParams(request.url.split("?")[1] ?? "");
  const message = bindRequest(route, bindings, query, request.body, request.options);
  return toJson(route.method.input, message);
}

function bindError(request: Request): ConnectError {
  try {
    bind(request);
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error(`${request.method} ${request.url} was accepted`);
}

const get = (url: string): Request => ({ method: "GET", url });

describe("request binding", () => {
  it.each<[string, Request, JsonValue]>([
    ["path and query", get("/v1/shelves/s1?withBooks=true"), { shelfId: "s1", withBooks: true }],
    [
      "snake_case query key",
      get("/v1/shelves/s1?with_books=true"),
      { shelfId: "s1", withBooks: true },
    ],
    ["%2F in a single-segment variable", get("/v1/shelves/a%2Fb"), { shelfId: "a/b" }],
    [
      "multi-segment variable, FieldMask in camel and snake case",
      get("/v1/shelves/s1/books/b1?readMask=title,publish_time,author.displayName"),
      { name: "shelves/s1/books/b1", readMask: "title,publishTime,author.displayName" },
    ],
    ["** variable keeps %2F", get("/v1/objects/a%2Fb/c"), { path: "a%2Fb/c" }],
    [
      "nested path variables with body *",
      { method: "POST", url: "/v1/shelves/s1/books/b1:move", body: { target: { position: 3 } } },
      { book: { name: "b1" }, target: { shelfId: "s1", position: 3 } },
    ],
    [
      "body field, custom JSON name, query beside it",
      {
        method: "POST",
        url: "/v1/shelves/s1/books?requestId=r1",
        body: { title: "T", pages: "12", isbnCode: "978" },
      },
      { shelfId: "s1", book: { title: "T", pages: "12", isbnCode: "978" }, requestId: "r1" },
    ],
    [
      "body * with a verb",
      { method: "POST", url: "/v1/books/b1:archive", body: { reason: "old" } },
      { name: "b1", reason: "old" },
    ],
    ["body * without a body", { method: "POST", url: "/v1/books/b1:archive" }, { name: "b1" }],
    [
      "path variable wins over the body",
      { method: "POST", url: "/v1/books/b1:archive", body: { name: "b2" } },
      { name: "b1" },
    ],
    [
      "unknown body fields ignored on request",
      {
        method: "POST",
        url: "/v1/shelves/s1/books",
        body: { title: "T", nope: 1 },
        options: { ignoreUnknownFields: true },
      },
      { shelfId: "s1", book: { title: "T" } },
    ],
    [
      "PATCH derives update_mask from the body",
      { method: "PATCH", url: "/v1/books/b1", body: { title: "New", genre: "GENRE_POETRY" } },
      { book: { name: "b1", title: "New", genre: "GENRE_POETRY" }, updateMask: "title,genre" },
    ],
    [
      "PATCH mask names fields set to null, leaves out the path's",
      { method: "PATCH", url: "/v1/books/b1", body: { name: "b1", publishTime: null } },
      { book: { name: "b1" }, updateMask: "publishTime" },
    ],
    [
      "PATCH keeps the client's update_mask",
      { method: "PATCH", url: "/v1/books/b1?updateMask=title", body: { title: "x", genre: 1 } },
      { book: { name: "b1", title: "x", genre: "GENRE_FICTION" }, updateMask: "title" },
    ],
    [
      "PUT derives no update_mask",
      { method: "PUT", url: "/v1/shelves/s1/books/b1", body: { title: "x" } },
      { book: { name: "b1", shelfId: "s1", title: "x" } },
    ],
    [
      "path variables of every text type",
      get(
        "/v1/typed/-5/9007199254740993/18446744073709551615/false/2/2024-01-01T00:00:00Z/1.5s/7/0.25",
      ),
      {
        i32: -5,
        i64: "9007199254740993",
        u64: "18446744073709551615",
        genre: "GENRE_POETRY",
        time: "2024-01-01T00:00:00Z",
        ttl: "1.500s",
        limit: 7,
        ratio: 0.25,
      },
    ],
    [
      "scalar query parameters",
      get(
        "/v1/books?query=hello%20world&page_size=10&minPages=-9007199254740993" +
          "&maxPages=18446744073709551615&includeArchived=true&minRating=4.5&maxPrice=1e3" +
          "&offset=4294967295&author=",
      ),
      {
        query: "hello world",
        pageSize: 10,
        minPages: "-9007199254740993",
        maxPages: "18446744073709551615",
        includeArchived: true,
        minRating: 4.5,
        maxPrice: 1000,
        offset: 4294967295,
        author: "",
      },
    ],
    ["bytes in base64", get("/v1/books?cursor=AQID"), { cursor: "AQID" }],
    ["bytes in base64url", get("/v1/books?cursor=_-8"), { cursor: "/+8=" }],
    ["enum by name", get("/v1/books?genre=GENRE_FICTION"), { genre: "GENRE_FICTION" }],
    ["enum by number", get("/v1/books?genre=2"), { genre: "GENRE_POETRY" }],
    [
      "repeated values",
      get("/v1/books?genres=GENRE_FICTION&genres=2&tags=a&tags=b&ids=1&ids=2"),
      { genres: ["GENRE_FICTION", "GENRE_POETRY"], tags: ["a", "b"], ids: ["1", "2"] },
    ],
    [
      "well-known types",
      get(
        "/v1/books?publishedAfter=2024-05-01T12:00:00.5%2B02:00&maxAge=90s&readMask=a,b.cD" +
          "&days=2024-01-01T00:00:00Z&days=2024-01-02T00:00:00Z",
      ),
      {
        publishedAfter: "2024-05-01T10:00:00.500Z",
        maxAge: "90s",
        readMask: "a,b.cD",
        days: ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
      },
    ],
    [
      "wrappers, including their zero values",
      get(
        "/v1/books?minYear=0&inStock=false&language=en&minIsbn=18446744073709551615&minScore=NaN&token=AQID",
      ),
      {
        minYear: 0,
        inStock: false,
        language: "en",
        minIsbn: "18446744073709551615",
        minScore: "NaN",
        token: "AQID",
      },
    ],
    [
      "nested query parameters",
      get("/v1/books?filter.author.displayName=Ann&filter.genre=GENRE_POETRY&filter.tags=x"),
      { filter: { author: { displayName: "Ann" }, genre: "GENRE_POETRY", tags: ["x"] } },
    ],
    ["oneof member", get("/v1/books?orderBy=title"), { orderBy: "title" }],
    ["custom method", { method: "PURGE", url: "/v1/cache/k%201" }, { key: "k 1" }],
  ])("%s", (_, request, expected) => {
    expect(bind(request)).toEqual(expected);
  });

  it.each<[Request, string]>([
    [
      get("/v1/shelves/s1?nope=1"),
      'unknown query parameter "nope": protomesh.gatewaytest.v1.GetShelfRequest has no field "nope"',
    ],
    [
      get("/v1/shelves/s1?withBooks=yes"),
      'invalid value "yes" for query parameter "withBooks": expected true or false',
    ],
    [
      get("/v1/books?pageSize=1.5"),
      'invalid value "1.5" for query parameter "pageSize": expected a 32-bit integer',
    ],
    [get("/v1/books?pageSize=2147483648"), "expected a 32-bit integer"],
    [
      get("/v1/books?offset=-1"),
      'for query parameter "offset": expected an unsigned 32-bit integer',
    ],
    [get("/v1/books?minPages=abc"), 'for query parameter "minPages": expected a 64-bit integer'],
    [get("/v1/books?maxPages=18446744073709551616"), "expected an unsigned 64-bit integer"],
    [get("/v1/books?minRating=1e39"), 'for query parameter "minRating": expected a number'],
    [get("/v1/books?maxPrice=0x10"), 'for query parameter "maxPrice": expected a number'],
    [
      get("/v1/books?cursor=!!!"),
      'for query parameter "cursor": expected base64 or base64url bytes',
    ],
    [
      get("/v1/books?genre=FICTION"),
      "expected one of GENRE_UNSPECIFIED, GENRE_FICTION, GENRE_POETRY (or its number)",
    ],
    [get("/v1/books?genre=7"), 'invalid value "7" for query parameter "genre": expected one of'],
    [
      get("/v1/books?publishedAfter=yesterday"),
      "expected an RFC 3339 timestamp such as 2024-05-01T12:00:00Z",
    ],
    [get("/v1/books?maxAge=90"), 'expected a duration in seconds with an "s" suffix such as 1.5s'],
    [get("/v1/books?readMask=a-b"), "expected comma-separated field paths"],
    [get("/v1/books?minYear=x"), 'for query parameter "minYear": expected a 32-bit integer'],
    [get("/v1/books?inStock=1"), 'for query parameter "inStock": expected true or false'],
    [
      get("/v1/books?pageSize=1&pageSize=2"),
      'query parameter "pageSize" is given 2 times; it takes one value',
    ],
    [
      get("/v1/books?pageSize=1&page_size=2"),
      'query parameters "pageSize" and "page_size" both set "page_size"; send one',
    ],
    [get("/v1/books?labels=x"), 'query parameter "labels" cannot be set in the query string'],
    [get("/v1/books?extra=x"), 'query parameter "extra" cannot be set in the query string'],
    [
      get("/v1/books?filter=x"),
      'query parameter "filter" names a message; set its fields instead, for example "filter.author"',
    ],
    [
      get("/v1/books?filter.nope=1"),
      'unknown query parameter "filter.nope": protomesh.gatewaytest.v1.Filter has no field "nope"',
    ],
    [get("/v1/books?query.x=1"), 'invalid query parameter "query.x": "query" has no fields to set'],
    [get("/v1/books?publishedAfter.seconds=1"), '"publishedAfter" has no fields to set'],
    [
      get("/v1/books?orderBy=a&randomSeed=1"),
      'query parameter "randomSeed" conflicts with "orderBy": only one field of "sort" can be set',
    ],
    [
      get("/v1/shelves/s1?shelfId=x"),
      'query parameter "shelfId" is not allowed: "shelf_id" is taken from the URL path',
    ],
    [
      { method: "POST", url: "/v1/books/b1:archive?reason=x" },
      'query parameter "reason" is not allowed: this endpoint reads every field from the JSON body',
    ],
    [
      { method: "POST", url: "/v1/shelves/s1/books?book.title=x" },
      'query parameter "book.title" is not allowed: "book" is read from the JSON body',
    ],
    [
      { method: "POST", url: "/v1/shelves/s1/books", body: { title: "T", nope: 1 } },
      'invalid JSON body: cannot decode message protomesh.gatewaytest.v1.Book from JSON: key "nope" is unknown',
    ],
    [
      { method: "POST", url: "/v1/books/b1:archive", body: [1] },
      "the request body must be a JSON object",
    ],
    [
      { method: "POST", url: "/v1/books/b1:archive", body: { reason: 5 } },
      "invalid JSON body: cannot decode field protomesh.gatewaytest.v1.ArchiveBookRequest.reason from JSON: expected string, got 5",
    ],
    [
      { method: "GET", url: "/v1/shelves/s1", body: {} },
      "this endpoint takes no request body; send the fields in the path and query string",
    ],
    [
      get("/v1/typed/x/1/1/true/1/2024-01-01T00:00:00Z/1s/5/0.5"),
      'invalid value "x" for path parameter "i32": expected a 32-bit integer',
    ],
    [
      get("/v1/typed/1/1/1/true/1/2024-13-01T00:00:00Z/1s/5/0.5"),
      'for path parameter "time": expected an RFC 3339 timestamp',
    ],
    [
      get("/v1/typed/1/1/-1/true/1/2024-01-01T00:00:00Z/1s/5/0.5"),
      'for path parameter "u64": expected an unsigned 64-bit integer',
    ],
  ])("rejects %j", (request, message) => {
    const error = bindError(request);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain(message);
  });
});

describe("update mask derivation", () => {
  const table = createRouteTable([LibraryService]);
  const patch = table.routes.find((r) => r.httpMethod === "PATCH") as Route;
  const put = table.routes.find((r) => r.httpMethod === "PUT") as Route;

  it.each<[string, Route, unknown, string[] | undefined]>([
    [
      "top-level JSON names",
      patch,
      { title: "x", publishTime: null, author: { born: 1 } },
      ["title", "publish_time", "author"],
    ],
    ["custom JSON and proto names", patch, { isbnCode: "1", shelf_id: "s" }, ["isbn", "shelf_id"]],
    ["fields of the path left out", patch, { name: "b1" }, []],
    ["unknown keys left out", patch, { nope: 1, title: "x" }, ["title"]],
    ["not an object", patch, null, undefined],
    ["not PATCH", put, { title: "x" }, undefined],
  ])("%s", (_, route, body, paths) => {
    expect(deriveUpdateMask(route, body)?.paths).toEqual(paths);
  });

  it("fills the mask of the protomesh PATCH routes", () => {
    const services = [UserService, TaskService];
    expect(
      bind({ method: "PATCH", url: "/v1/tasks/t1", body: { title: "x", dueTime: null } }, services),
    ).toEqual({ task: { id: "t1", title: "x" }, updateMask: "title,dueTime" });
    expect(
      bind({ method: "PATCH", url: "/v1/users/me", body: { displayName: "Ann" } }, services),
    ).toEqual({ user: { displayName: "Ann" }, updateMask: "displayName" });
  });
});
