import { describe, expect, it } from "vitest";
import { ifRangeHolds, namesEtag, parseContentRange, parseRange } from "./download.ts";

describe("parseRange", () => {
  it.each<[string, { offset: bigint; length: bigint }]>([
    ["bytes=0-99", { offset: 0n, length: 100n }],
    ["bytes=10-10", { offset: 10n, length: 1n }],
    ["bytes=500-", { offset: 500n, length: 0n }],
    ["bytes=-300", { offset: -300n, length: 0n }],
    // The unit is case-insensitive; white space around the range and empty list elements are
    // allowed.
    ["Bytes = 5-9 ", { offset: 5n, length: 5n }],
    ["bytes=, 5-9,", { offset: 5n, length: 5n }],
    // Past int64, a last position or a suffix stands for the end.
    ["bytes=1-99999999999999999999", { offset: 1n, length: 2n ** 63n - 1n }],
    ["bytes=-99999999999999999999", { offset: -(2n ** 63n - 1n), length: 0n }],
  ])("binds %j", (header, range) => {
    expect(parseRange(header)).toEqual(range);
  });

  it.each([
    undefined,
    "",
    "bytes=",
    "bytes=-",
    "bytes=-0",
    "bytes=9-5",
    "bytes=a-b",
    "bytes=1-2-3",
    "bytes= 1 - 2",
    "bytes=0-1,5-9",
    "items=0-9",
    "bytes 0-9",
    "bytes=99999999999999999999-",
  ])("ignores %j", (header) => {
    expect(parseRange(header)).toBeUndefined();
  });
});

describe("parseContentRange", () => {
  it.each([
    ["bytes 0-99/1000", { first: 0, length: 100, size: 1000 }],
    ["bytes 999-999/1000", { first: 999, length: 1, size: 1000 }],
    ["bytes */0", { first: undefined, length: 0, size: 0 }],
    ["bytes */1000", { first: undefined, length: 0, size: 1000 }],
  ])("reads %j", (value, range) => {
    expect(parseContentRange(value)).toEqual(range);
  });

  it.each([
    undefined,
    "bytes 0-1000/1000",
    "bytes 5-4/1000",
    "bytes 0-9/*",
    "items 0-9/10",
    "bytes 0-9/99999999999999999999",
  ])("refuses %j", (value) => {
    expect(parseContentRange(value)).toBeUndefined();
  });
});

describe("namesEtag", () => {
  const etag = '"abc"';
  it.each([
    '"abc"',
    'W/"abc"',
    '"x", "abc"',
    '"x",W/"abc" , "y"',
    "*",
    " * ",
    // A tag may hold a comma.
    '"a,b", "abc"',
  ])("matches %j", (header) => {
    expect(namesEtag(header, etag)).toBe(true);
  });

  it("compares weakly on the ETag's side too", () => {
    expect(namesEtag('"abc"', 'W/"abc"')).toBe(true);
  });

  it.each([undefined, "", '"abcd"', "abc", '"x" "abc"', '"x", abc, "abc"', 'w/"abc"'])(
    "does not match %j",
    (header) => {
      expect(namesEtag(header, etag)).toBe(false);
    },
  );

  it("matches only * when the upstream sent no ETag", () => {
    expect(namesEtag("*", undefined)).toBe(true);
    expect(namesEtag('"abc"', undefined)).toBe(false);
  });
});

describe("ifRangeHolds", () => {
  const date = "Tue, 02 Jan 2024 03:04:05 GMT";
  const upstream = { etag: '"abc"', "last-modified": date };
  it.each<[string | undefined, Record<string, string>, boolean]>([
    [undefined, upstream, true],
    ['"abc"', upstream, true],
    [date, upstream, true],
    ['"abd"', upstream, false],
    // The comparison is strong: a weak tag on either side fails it.
    ['W/"abc"', upstream, false],
    ['"abc"', { etag: 'W/"abc"' }, false],
    ["Tue, 02 Jan 2024 03:04:06 GMT", upstream, false],
    ['"abc"', {}, false],
    [date, {}, false],
    ['"abc", "abc"', upstream, false],
  ])("holds for If-Range %j against %j: %s", (header, headers, holds) => {
    expect(ifRangeHolds(header, headers)).toBe(holds);
  });
});
