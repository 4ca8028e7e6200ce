import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalStorage } from "./local-storage.ts";
import { defineStorageContract } from "./storage-contract.ts";

const dirs: string[] = [];

async function freshRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "protomesh-local-storage-"));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

defineStorageContract("local storage", {
  async open() {
    const root = await freshRoot();
    return { storage: await createLocalStorage({ root }), listAll: () => listFiles(root) };
  },
  presigned: "none",
});

describe("local storage keys", () => {
  it.each([
    "../outside",
    "files/../../outside",
    "/etc/passwd",
    "files\\..\\outside",
    "files/a\0b",
    "",
    "files//a",
    ".tmp/pending",
  ])("refuses %j, which could leave the root or reach the store's own files", async (key) => {
    const storage = await createLocalStorage({ root: await freshRoot() });
    await expect(storage.create(key)).rejects.toThrow(/storage key/);
    await expect(storage.size(key)).rejects.toThrow(/storage key/);
    await expect(storage.delete(key)).rejects.toThrow(/storage key/);
    await expect(storage.staging.open(key)).rejects.toThrow(/storage key/);
    expect(() => storage.read(key, { offset: 0, length: 1 })).toThrow(/storage key/);
  });
});

describe("local storage temporary files", () => {
  it("sweeps those older than a day when the store opens, and keeps newer ones", async () => {
    const root = await freshRoot();
    await mkdir(join(root, ".tmp"));
    await writeFile(join(root, ".tmp", "dead"), "left by a process that died");
    await writeFile(join(root, ".tmp", "live"), "a pending write of a live process");
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 60 * 60 * 1000);
    await utimes(join(root, ".tmp", "dead"), twoDaysAgo, twoDaysAgo);
    await createLocalStorage({ root });
    expect(await listFiles(root)).toEqual([".tmp/live"]);
  });
});

/** Every file below `root`, as a path relative to it. */
async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}
