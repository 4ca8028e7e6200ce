import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { z } from "zod";
import { feedContent } from "./feed-content.ts";
import { isNotFound } from "./s3-not-found.ts";
import type { AppendResult, StageState, StagingArea } from "./storage.ts";

/** What staging in a bucket needs. */
export interface S3StagingOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Bytes of each part, at least S3's minimum of 5 MiB. */
  readonly partSize: number;
}

/** Where the tail of a stage waits for the next append, beside the keys of stored content. */
const tailPrefix = ".staging/";

/**
 * A stage as its opaque state holds it: the multipart upload (created with the first full
 * part), the parts uploaded so far, and the size of the tail that did not fill a part.
 */
const stageSchema = z.object({
  uploadId: z.string().optional(),
  parts: z.array(z.object({ number: z.number().int().positive(), etag: z.string() })),
  tail: z.number().int().min(0),
});

type Stage = z.infer<typeof stageSchema>;

/**
 * Staging as an S3 multipart upload. Each append uploads the full parts as they fill; what is
 * left when it ends, smaller than a part (S3 takes a smaller part only as the last), is kept as
 * an object of its own and put back before the next append's content. Memory holds one part.
 */
export function createS3Staging(options: S3StagingOptions): StagingArea {
  const { client, bucket } = options;
  const tailKey = (key: string) => `${tailPrefix}${key}`;
  return {
    async open() {
      return stageState(0, { parts: [], tail: 0 });
    },
    append(key, state, content) {
      return appendToStage(options, key, state, content);
    },
    async complete(key, state) {
      const stage = parseStage(state);
      const uploadId = stage.uploadId ?? (await createUpload(client, bucket, key));
      const parts = [...stage.parts];
      // The tail, or an empty part for an empty stage, since an upload needs one part at least.
      if (stage.tail > 0 || parts.length === 0) {
        const tail = stage.tail > 0 ? await readTail(client, bucket, tailKey(key), stage) : empty;
        parts.push(await uploadPart(options, key, uploadId, parts.length + 1, tail));
      }
      await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.number, ETag: p.etag })) },
        }),
      );
      if (stage.tail > 0) {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: tailKey(key) }));
      }
    },
    async discard(key, state) {
      const { uploadId } = parseStage(state);
      if (uploadId !== undefined) {
        try {
          await client.send(
            new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }),
          );
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: tailKey(key) }));
    },
  };
}

const empty = new Uint8Array(0);

/**
 * Appends `content` behind the stage's tail: each part that fills is uploaded at once, and the
 * new tail is stored when the content ends, normally or not. A failure of the store rejects and
 * leaves the previous state valid, as its tail object is only replaced at the very end.
 */
async function appendToStage(
  options: S3StagingOptions,
  key: string,
  state: StageState,
  content: AsyncIterable<Uint8Array>,
): Promise<AppendResult> {
  const { client, bucket, partSize } = options;
  const stage = parseStage(state);
  const tailKey = `${tailPrefix}${key}`;
  const part = Buffer.allocUnsafe(partSize);
  let filled = 0;
  if (stage.tail > 0) {
    const tail = await readTail(client, bucket, tailKey, stage);
    part.set(tail);
    filled = tail.byteLength;
  }
  let uploadId = stage.uploadId;
  const parts = [...stage.parts];
  let size = state.size;
  // A multipart upload this append started is in no state the caller keeps if the append
  // fails: it is aborted here, or it would hold its parts for ever.
  const abandon = async (err: unknown): Promise<never> => {
    if (stage.uploadId === undefined && uploadId !== undefined) {
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
        .catch(() => {});
    }
    throw err;
  };
  const error = await feedContent(content, async (chunk) => {
    for (let at = 0; at < chunk.byteLength; ) {
      const taken = Math.min(chunk.byteLength - at, partSize - filled);
      part.set(chunk.subarray(at, at + taken), filled);
      filled += taken;
      at += taken;
      if (filled === partSize) {
        uploadId ??= await createUpload(client, bucket, key);
        parts.push(await uploadPart(options, key, uploadId, parts.length + 1, part));
        filled = 0;
      }
    }
    size += chunk.byteLength;
  }).catch(abandon);
  if (filled > 0) {
    await client
      .send(new PutObjectCommand({ Bucket: bucket, Key: tailKey, Body: part.subarray(0, filled) }))
      .catch(abandon);
  } else if (stage.tail > 0) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: tailKey }));
  }
  const next = stageState(size, {
    ...(uploadId !== undefined && { uploadId }),
    parts,
    tail: filled,
  });
  return error === undefined ? { state: next } : { state: next, error };
}

/** Starts the multipart upload of `key`. */
async function createUpload(client: S3Client, bucket: string, key: string): Promise<string> {
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
  );
  if (UploadId === undefined) throw new Error(`CreateMultipartUpload of ${key} gave no upload id`);
  return UploadId;
}

/** Uploads one part and returns what completing the upload needs of it. */
async function uploadPart(
  options: S3StagingOptions,
  key: string,
  uploadId: string,
  number: number,
  body: Uint8Array,
): Promise<Stage["parts"][number]> {
  const { ETag } = await options.client.send(
    new UploadPartCommand({
      Bucket: options.bucket,
      Key: key,
      UploadId: uploadId,
      PartNumber: number,
      Body: body,
      ContentLength: body.byteLength,
    }),
  );
  if (ETag === undefined) throw new Error(`UploadPart ${number} of ${key} gave no ETag`);
  return { number, etag: ETag };
}

/** Reads a stage's tail, which must be as long as its state says. */
async function readTail(
  client: S3Client,
  bucket: string,
  tailKey: string,
  stage: Stage,
): Promise<Uint8Array> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: tailKey }));
  const tail = (await response.Body?.transformToByteArray()) ?? empty;
  if (tail.byteLength !== stage.tail) {
    throw new Error(`the tail ${tailKey} holds ${tail.byteLength} bytes, not ${stage.tail}`);
  }
  return tail;
}

function stageState(size: number, stage: Stage): StageState {
  return { size, opaque: JSON.stringify(stage) };
}

function parseStage(state: StageState): Stage {
  let json: unknown;
  try {
    json = JSON.parse(state.opaque);
  } catch {
    throw new Error("the stage's state is not JSON");
  }
  const parsed = stageSchema.safeParse(json);
  if (!parsed.success) throw new Error(`the stage's state is not an S3 stage: ${parsed.error}`);
  return parsed.data;
}
