import { describe, expect, it } from "vitest";
import { csvContentType, csvField, csvRecord, csvText, streamCsv } from "./csv.ts";

async function* batches(...lists: string[][]): AsyncGenerator<string[]> {
  yield* lists;
}

async function collect(stream: AsyncIterable<{ contentType: string; data: Uint8Array }>) {
  const messages: { contentType: string; text: string }[] = [];
  for await (const m of stream) {
    messages.push({ contentType: m.contentType, text: Buffer.from(m.data).toString("utf8") });
  }
  return messages;
}

describe("CSV fields (RFC 4180)", () => {
  it("are quoted only when they hold a comma, a quote or a line break, with quotes doubled", () => {
    expect(csvField("plain text")).toBe("plain text");
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(csvField("cr\r")).toBe('"cr\r"');
    expect(csvField("")).toBe("");
    expect(csvField("ünïcödé 🚀")).toBe("ünïcödé 🚀");
  });

  it("of user text are never read as a formula by a spreadsheet", () => {
    for (const risky of ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"]) {
      expect(csvText(risky)).toBe(csvField(`'${risky}`));
    }
    expect(csvText('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvText("a-b")).toBe("a-b");
  });

  it("make records ended by CRLF", () => {
    expect(csvRecord(["a", '"b,c"', ""])).toBe('a,"b,c",\r\n');
  });
});

describe("streamCsv", () => {
  it("sends the header first, the content type on the first message only, in bounded chunks", async () => {
    const rows = Array.from({ length: 100 }, (_, i) => csvRecord([String(i), "x".repeat(20)]));
    const messages = await collect(
      streamCsv(["n", "text"], batches(rows.slice(0, 60), rows.slice(60)), 256),
    );
    expect(messages[0]?.contentType).toBe(csvContentType);
    expect(messages.slice(1).every((m) => m.contentType === "")).toBe(true);
    expect(messages.length).toBeGreaterThan(5);
    expect(messages.every((m) => m.text.length < 256 + 30)).toBe(true);
    expect(messages.map((m) => m.text).join("")).toBe(`n,text\r\n${rows.join("")}`);
  });

  it("sends the header alone when there are no rows", async () => {
    expect(await collect(streamCsv(["a", "b"], batches()))).toEqual([
      { contentType: csvContentType, text: "a,b\r\n" },
    ]);
  });
});
