import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  fileMetadataOf,
  formatUploadMetadata,
  parseByteCount,
  parseUploadMetadata,
} from "./tus-headers.ts";

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

function refusal(run: () => unknown): ConnectError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("parseUploadMetadata", () => {
  it("decodes each key's Base64 value, and a key without one as empty", () => {
    const pairs = parseUploadMetadata(
      `filename ${b64("world plan ü.pdf")}, filetype ${b64("application/pdf")},is_confidential`,
    );
    expect([...pairs]).toEqual([
      ["filename", "world plan ü.pdf"],
      ["filetype", "application/pdf"],
      ["is_confidential", ""],
    ]);
  });

  it("reads a missing or blank header as no metadata", () => {
    expect(parseUploadMetadata(undefined).size).toBe(0);
    expect(parseUploadMetadata("  ").size).toBe(0);
  });

  it.each([
    ["a value that is no Base64", "filename a*b", 'the value of "filename" is not Base64'],
    ["unpadded Base64", "filename YWJjZA", 'the value of "filename" is not Base64'],
    ["a pair with two values", `filename ${b64("a")} ${b64("b")}`, "is not"],
    ["an empty pair", `filename ${b64("a")},,type ${b64("b")}`, '"" is not'],
    ["a key given twice", `name ${b64("a")},name ${b64("b")}`, '"name" is given twice'],
  ])("refuses %s with InvalidArgument", (_case, header, message) => {
    const err = refusal(() => parseUploadMetadata(header));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("upload-metadata");
    expect(err.rawMessage).toContain(message);
  });

  it("reads back what formatUploadMetadata writes, leaving out empty values", () => {
    const header = formatUploadMetadata({ filename: "a, b.txt", filetype: "" });
    expect(header).toBe(`filename ${b64("a, b.txt")}`);
    expect([...parseUploadMetadata(header)]).toEqual([["filename", "a, b.txt"]]);
  });
});

describe("fileMetadataOf", () => {
  it("takes filename and filetype, as tus-js-client's examples send them", () => {
    const pairs = new Map([
      ["filename", "a.png"],
      ["filetype", "image/png"],
    ]);
    expect(fileMetadataOf(pairs)).toEqual({ filename: "a.png", contentType: "image/png" });
  });

  it("takes name and type, as Uppy sends them", () => {
    const pairs = new Map([
      ["name", "b.csv"],
      ["type", "text/csv"],
      ["relativePath", "null"],
    ]);
    expect(fileMetadataOf(pairs)).toEqual({ filename: "b.csv", contentType: "text/csv" });
  });

  it("leaves out what is not given", () => {
    expect(fileMetadataOf(new Map())).toEqual({ filename: "", contentType: "" });
  });
});

describe("parseByteCount", () => {
  it("reads a non-negative integer", () => {
    expect(parseByteCount("upload-offset", "0")).toBe(0);
    expect(parseByteCount("upload-length", "5368709120")).toBe(5368709120);
  });

  it("refuses a missing header by name", () => {
    const err = refusal(() => parseByteCount("upload-length", undefined));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("the upload-length header is required");
  });

  it.each(["", "-1", "1.5", "12abc", " 7", "99999999999999999", ["1", "2"]])(
    "refuses %j",
    (value) => {
      const err = refusal(() => parseByteCount("upload-offset", value));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/^upload-offset must be a non-negative integer/);
    },
  );
});
