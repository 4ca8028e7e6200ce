import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { contentTypeHeadBytes, resolveContentType } from "./content-type.ts";

const text = (value: string) => new TextEncoder().encode(value);

const pdf = text(
  "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
);
const csv = text("name,quantity\napples,3\npears,5\n");
const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>';

const head = (content: Uint8Array) => content.subarray(0, contentTypeHeadBytes);

const invalidArgument = (message: RegExp) =>
  expect.objectContaining({
    code: Code.InvalidArgument,
    rawMessage: expect.stringMatching(message),
  });

describe("resolveContentType", () => {
  let png: Uint8Array;

  beforeAll(async () => {
    // Noise, so that the file is far longer than the head that is read.
    png = await sharp(randomBytes(300 * 300 * 3), {
      raw: { width: 300, height: 300, channels: 3 },
    })
      .png()
      .toBuffer();
    expect(png.length).toBeGreaterThan(contentTypeHeadBytes);
  });

  it("takes the type detected from the content over a declared one that is no image", async () => {
    expect(await resolveContentType(head(png), undefined)).toBe("image/png");
    expect(await resolveContentType(head(png), "application/octet-stream")).toBe("image/png");
    expect(await resolveContentType(head(pdf), "text/plain")).toBe("application/pdf");
  });

  it("accepts a declared image type that the content confirms, whatever its case", async () => {
    expect(await resolveContentType(head(png), "IMAGE/PNG")).toBe("image/png");
  });

  it("refuses a declared image type that the content contradicts, naming both", async () => {
    await expect(resolveContentType(head(pdf), "image/png")).rejects.toThrow(
      invalidArgument(/"image\/png".*"application\/pdf"/),
    );
    await expect(resolveContentType(head(png), "image/jpeg")).rejects.toThrow(
      invalidArgument(/"image\/jpeg".*"image\/png"/),
    );
    await expect(resolveContentType(head(csv), "image/gif")).rejects.toThrow(
      invalidArgument(/"image\/gif".*no type that can be detected/),
    );
  });

  it("keeps a declared text format, which cannot be detected, with its parameters", async () => {
    expect(await resolveContentType(head(csv), "text/csv")).toBe("text/csv");
    expect(await resolveContentType(head(csv), "Text/CSV; charset=utf-8")).toBe(
      "text/csv; charset=utf-8",
    );
    expect(await resolveContentType(text('{"a": [1, 2]}'), "application/json")).toBe(
      "application/json",
    );
    expect(await resolveContentType(head(csv), undefined)).toBe("application/octet-stream");
  });

  it("keeps a declared SVG, which is XML text, with or without an XML declaration", async () => {
    expect(await resolveContentType(text(svg), "image/svg+xml")).toBe("image/svg+xml");
    const declaredXml = text(`<?xml version="1.0" encoding="UTF-8"?>\n${svg}`);
    expect(await resolveContentType(declaredXml, "image/svg+xml")).toBe("image/svg+xml");
    expect(await resolveContentType(declaredXml, undefined)).toBe("application/xml");
    await expect(resolveContentType(declaredXml, "image/png")).rejects.toThrow(
      invalidArgument(/"image\/png".*"application\/xml"/),
    );
  });

  it("gives an empty file its declared type, or application/octet-stream", async () => {
    const empty = new Uint8Array();
    expect(await resolveContentType(empty, undefined)).toBe("application/octet-stream");
    expect(await resolveContentType(empty, "")).toBe("application/octet-stream");
    expect(await resolveContentType(empty, "text/plain")).toBe("text/plain");
    await expect(resolveContentType(empty, "image/png")).rejects.toThrow(
      invalidArgument(/"image\/png"/),
    );
  });

  it("refuses a declared type that is not a media type", async () => {
    for (const declared of [
      "png",
      "image/",
      "/png",
      "text/plain;",
      "text/plain; charset",
      'text/plain; charset="utf-8',
      "text plain/x",
      "text/plain\r\nx-injected: 1",
      `text/${"x".repeat(300)}`,
    ]) {
      await expect(resolveContentType(head(csv), declared), declared).rejects.toThrow(
        invalidArgument(/^content_type must be a media type/),
      );
    }
    expect(await resolveContentType(head(csv), 'text/plain; charset="utf-8"; x=y')).toBe(
      'text/plain; charset="utf-8"; x=y',
    );
  });
});
