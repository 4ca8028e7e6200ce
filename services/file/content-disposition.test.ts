import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { contentDispositionOf, maxFilenameBytes, sanitizeFilename } from "./content-disposition.ts";

const utf8Length = (value: string) => Buffer.byteLength(value, "utf8");

// The filename* parameter decoded as a user agent decodes it (RFC 8187 §3.2.1).
function extFilename(header: string): string {
  const match = /; filename\*=UTF-8''([!#$&+\-.^_`|~0-9A-Za-z%]*)$/.exec(header);
  if (match?.[1] === undefined) throw new Error(`no filename* in ${header}`);
  return decodeURIComponent(match[1]);
}

describe("sanitizeFilename", () => {
  it("removes directories, whichever slash they use", () => {
    expect(sanitizeFilename("../../etc/passwd")).toBe("passwd");
    expect(sanitizeFilename("C:\\x\\y.txt")).toBe("y.txt");
    expect(sanitizeFilename("a/b\\c/d.txt")).toBe("d.txt");
  });

  it("removes NUL, control and bidirectional characters, and surrounding spaces", () => {
    expect(sanitizeFilename("re\u0000port.pdf")).toBe("report.pdf");
    expect(sanitizeFilename("  two\r\nlines\u007f.txt\t")).toBe("twolines.txt");
    expect(sanitizeFilename("invoice\u202efdp.exe")).toBe("invoicefdp.exe");
    expect(sanitizeFilename("naïve café 🚀.txt")).toBe("naïve café 🚀.txt");
  });

  it("cuts a long name to 255 bytes of UTF-8 without splitting a character", () => {
    expect(utf8Length("é".repeat(150))).toBe(300);
    expect(sanitizeFilename("é".repeat(150))).toBe("é".repeat(127));
    const emoji = sanitizeFilename("😀".repeat(75));
    expect(emoji).toBe("😀".repeat(63));
    expect(utf8Length(emoji)).toBeLessThanOrEqual(maxFilenameBytes);
    const ascii = "a".repeat(maxFilenameBytes);
    expect(sanitizeFilename(`${ascii}bc`)).toBe(ascii);
  });

  it("refuses a name that is empty, or only directories and control characters", () => {
    expect(() => sanitizeFilename("  ")).toThrow(
      expect.objectContaining({ code: Code.InvalidArgument, rawMessage: "filename is required" }),
    );
    for (const name of ["../", "..", "dir/.", "a\\\u0000", "x/ \t"]) {
      expect(() => sanitizeFilename(name), name).toThrow(
        expect.objectContaining({
          code: Code.InvalidArgument,
          rawMessage: expect.stringMatching(/^filename has no name left/),
        }),
      );
    }
  });
});

describe("contentDispositionOf", () => {
  it("downloads every type a browser would render as a page or run script from", () => {
    for (const type of [
      "text/html",
      "text/html; charset=utf-8",
      "application/xhtml+xml",
      "image/svg+xml",
      "IMAGE/SVG+XML",
      "application/xml",
      "text/xml",
      "application/atom+xml",
      "text/javascript",
      "application/javascript",
      "application/pdf",
      "application/octet-stream",
      "application/x-never-heard-of",
      "text/csv",
      "",
    ]) {
      expect(contentDispositionOf("f", type), type).toMatch(/^attachment; /);
    }
  });

  it("shows images, audio, video and plain text inline", () => {
    for (const type of [
      "image/png",
      "image/jpeg",
      "image/webp; q=1",
      "text/plain",
      "text/plain; charset=utf-8",
      "audio/mpeg",
      "video/mp4",
    ]) {
      expect(contentDispositionOf("f", type), type).toMatch(/^inline; /);
    }
  });

  it("names the file in ASCII and, exactly, in percent-encoded UTF-8", () => {
    expect(contentDispositionOf("report.pdf", "application/pdf")).toBe(
      `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
    );
    const name = 'naïve "quote" \\ back 100%41 日本.txt';
    const header = contentDispositionOf(name, "text/plain");
    expect(header).toBe(
      `inline; filename="naive _quote_ _ back 100_41 __.txt"; filename*=UTF-8''na%C3%AFve%20%22quote%22%20%5C%20back%20100%2541%20%E6%97%A5%E6%9C%AC.txt`,
    );
    expect(extFilename(header)).toBe(name);
  });

  it("percent-encodes what RFC 8187 does not allow bare, and keeps one character per emoji", () => {
    const name = "it's (1)*🚀!.png";
    const header = contentDispositionOf(name, "image/png");
    expect(header).toBe(
      `inline; filename="it's (1)*_!.png"; filename*=UTF-8''it%27s%20%281%29%2A%F0%9F%9A%80!.png`,
    );
    expect(extFilename(header)).toBe(name);
  });

  it("never lets a filename break out of the header", () => {
    expect(contentDispositionOf('a";\r\nset-cookie: x=1', "image/png")).toBe(
      `inline; filename="a_;__set-cookie: x=1"; filename*=UTF-8''a%22%3B%0D%0Aset-cookie%3A%20x%3D1`,
    );
  });
});
