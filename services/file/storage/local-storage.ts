import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { feedContent } from "./feed-content.ts";
import type {
  AppendResult,
  ByteRange,
  FileStorage,
  PendingWrite,
  StageState,
  StagingArea,
} from "./storage.ts";

/** Where a local store keeps content. */
export interface LocalStorageOptions {
  /** The directory that holds everything; created when missing. */
  readonly root: string;
}

// Directories of the store's own files under the root; no key can name them (see checkKey).
const tempDir = ".tmp";
const stagingDir = ".staging";

/** A pending write's temporary file this old belongs to a process that died: swept at open. */
const staleTempAgeMs = 24 * 60 * 60 * 1000;

/**
 * Opens a store of content under a local directory: a key is a file below `root`. Writes go to
 * a temporary file renamed into place once synced, so a reader never sees half a file.
 */
export async function createLocalStorage(options: LocalStorageOptions): Promise<FileStorage> {
  const { root } = options;
  await mkdir(join(root, tempDir), { recursive: true });
  await mkdir(join(root, stagingDir), { recursive: true });
  await sweepStaleTemps(join(root, tempDir));
  const pathOf = (key: string) => join(root, checkKey(key));
  return {
    async create(key) {
      const target = pathOf(key);
      const temp = join(root, tempDir, randomUUID());
      return createPendingFile(await open(temp, "wx"), temp, target);
    },
    async size(key) {
      const stats = await statIfExists(pathOf(key));
      return stats?.isFile() ? stats.size : undefined;
    },
    read(key, range, signal) {
      return readRange(pathOf(key), range, signal);
    },
    async delete(key) {
      await rm(pathOf(key), { force: true });
    },
    staging: createLocalStaging((key) => join(root, stagingDir, checkKey(key)), pathOf),
    async presignedUrl() {
      return undefined;
    },
    async close() {},
  };
}

/**
 * Returns `key` when it names a file below the root, and throws otherwise: keys are generated
 * by the service, so anything that could leave the root (or reach the store's own dot
 * directories) is a bug, never something to clean up and use.
 */
function checkKey(key: string): string {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new Error(`storage key ${JSON.stringify(key)} ${problem}`);
  return key;
}

/** What makes `key` unfit to name a file below the root, if anything. */
function keyProblem(key: string): string | undefined {
  if (key === "") return "is empty";
  if (key.includes("\0")) return "contains a NUL character";
  if (key.includes("\\")) return "contains a backslash";
  if (key.startsWith("/")) return "is absolute";
  if (key.split("/").some((segment) => segment === "" || segment.startsWith("."))) {
    return "has an empty segment or one starting with a dot";
  }
  return undefined;
}

/** Removes the temporary files older than a day that no pending write of a live process holds. */
async function sweepStaleTemps(dir: string): Promise<void> {
  const cutoff = Date.now() - staleTempAgeMs;
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const stats = await statIfExists(path);
    if (stats && stats.mtimeMs < cutoff) await rm(path, { force: true });
  }
}

/** A pending write into the temporary file `temp`, renamed to `target` on commit. */
function createPendingFile(file: FileHandle, temp: string, target: string): PendingWrite {
  let size = 0;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await file.close();
  };
  return {
    async write(chunk) {
      await writeAllAt(file, chunk, size);
      size += chunk.byteLength;
    },
    async commit() {
      // Synced before the rename, so that after a crash the key holds the whole content or
      // nothing, never a file whose blocks were not written yet.
      await file.sync();
      await close();
      await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
    },
    async abort() {
      await close();
      await rm(temp, { force: true });
    },
  };
}

/**
 * Streams exactly `range` of the file: the stream reads ahead only as far as its buffer, so a
 * consumer that stops pulling stops the reads, and ending the iteration closes the file.
 */
async function* readRange(
  path: string,
  range: ByteRange,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  if (range.length === 0) return;
  yield* createReadStream(path, {
    start: range.offset,
    end: range.offset + range.length - 1,
    signal,
  });
}

/**
 * Staging as one file per stage, appended to, and renamed to its key on completion. The
 * caller's state is the truth: bytes past its size (an append whose new state was never
 * persisted) are cut off before the next append.
 */
function createLocalStaging(
  stagePathOf: (key: string) => string,
  pathOf: (key: string) => string,
): StagingArea {
  return {
    async open(key) {
      const path = stagePathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const file = await open(path, "w");
      await file.close();
      return stageState(0);
    },
    async append(key, state, content) {
      const file = await openStage(stagePathOf(key), state);
      try {
        return await appendContent(file, state.size, content);
      } finally {
        await file.close();
      }
    },
    async complete(key, state) {
      const file = await openStage(stagePathOf(key), state);
      await file.close();
      const target = pathOf(key);
      await mkdir(dirname(target), { recursive: true });
      await rename(stagePathOf(key), target);
    },
    async discard(key) {
      await rm(stagePathOf(key), { force: true });
    },
  };
}

/** The state of a local stage: its size says it all. */
function stageState(size: number): StageState {
  return { size, opaque: "" };
}

/** Opens a stage for appending at `state.size`, cutting off whatever lies past it. */
async function openStage(path: string, state: StageState): Promise<FileHandle> {
  const file = await open(path, "r+");
  const { size } = await file.stat();
  if (size < state.size) {
    await file.close();
    throw new Error(`stage ${path} holds ${size} bytes, fewer than its state's ${state.size}`);
  }
  if (size > state.size) await file.truncate(state.size);
  return file;
}

/**
 * Appends `content` from `offset` on, and syncs what was written, so the returned size is on
 * disk. A failure of `content` itself ends the append normally, with the error beside the state.
 */
async function appendContent(
  file: FileHandle,
  offset: number,
  content: AsyncIterable<Uint8Array>,
): Promise<AppendResult> {
  let size = offset;
  const error = await feedContent(content, async (chunk) => {
    await writeAllAt(file, chunk, size);
    size += chunk.byteLength;
  });
  await file.sync();
  return error === undefined ? { state: stageState(size) } : { state: stageState(size), error };
}

/** Writes every byte of `chunk` at `position`. */
async function writeAllAt(file: FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < chunk.byteLength) {
    const { bytesWritten } = await file.write(
      chunk,
      written,
      chunk.byteLength - written,
      position + written,
    );
    written += bytesWritten;
  }
}

/** The file's stats, or undefined when there is no file. */
async function statIfExists(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
