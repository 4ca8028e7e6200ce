import type { JsonValue, Message } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { createRouteTable } from "../routing/route-table.ts";
import {
  BookSchema,
  Genre,
  LibraryService,
  ListBooksResponseSchema,
} from "../testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import { bindResponse } from "./response-binding.ts";

const table = createRouteTable([LibraryService]);

const book = create(BookSchema, {
  name: "b1",
  title: "T",
  pages: 12n,
  genre: Genre.POETRY,
  isbn: "978",
  publishTime: timestampFromDate(new Date("2024-05-01T12:00:00Z")),
  author: { displayName: "Ann" },
});

const bookJson = {
  name: "b1",
  title: "T",
  pages: "12",
  genre: "GENRE_POETRY",
  isbnCode: "978",
  publishTime: "2024-05-01T12:00:00Z",
  author: { displayName: "Ann" },
};

describe("response binding", () => {
  it.each<[string, string, string, Message, JsonValue]>([
    [
      "the whole message, JSON names, int64 as string, enum by name",
      "GET",
      "/v1/books/b1",
      book,
      bookJson,
    ],
    ["an empty message", "GET", "/v1/books/b1", create(BookSchema), {}],
    [
      "a repeated response_body",
      "GET",
      "/v1/books",
      create(ListBooksResponseSchema, { books: [book], nextPageToken: "n" }),
      [bookJson],
    ],
    ["an empty repeated response_body", "GET", "/v1/books", create(ListBooksResponseSchema), []],
    ["a scalar response_body", "POST", "/v1/shelves/s1/books", book, "T"],
    [
      "a scalar response_body at its zero value",
      "POST",
      "/v1/shelves/s1/books",
      create(BookSchema),
      "",
    ],
    ["a message response_body", "GET", "/v1/books/b1/author", book, { displayName: "Ann" }],
    ["an unset message response_body", "GET", "/v1/books/b1/author", create(BookSchema), null],
  ])("%s", (_, method, path, message, expected) => {
    const match = table.match(method, path);
    if (match.kind !== "found") throw new Error(`${method} ${path}: ${match.kind}`);
    expect(bindResponse(match.route, message)).toEqual(expected);
  });
});
