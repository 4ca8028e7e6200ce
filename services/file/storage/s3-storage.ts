import { addAbortSignal, PassThrough, Readable } from "node:stream";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { isNotFound } from "./s3-not-found.ts";
import { createS3Staging } from "./s3-staging.ts";
import type { ByteRange, FileStorage, PendingWrite, PresignedDownload } from "./storage.ts";

/** Where an S3 store keeps content, and how it reaches the bucket. */
export interface S3StorageOptions {
  readonly bucket: string;
  /** An S3-compatible server (MinIO, for one); AWS's own endpoint for the region when unset. */
  readonly endpoint?: string | undefined;
  readonly region: string;
  /** Addresses the bucket in the path (`host/bucket/key`) rather than in the host name. */
  readonly forcePathStyle: boolean;
  /** Static credentials; the SDK's default chain (environment, profile, role) when unset. */
  readonly credentials?:
    | { readonly accessKeyId: string; readonly secretAccessKey: string }
    | undefined;
  /** Bytes of each part of a multipart upload, at least S3's minimum of 5 MiB. */
  readonly partSize: number;
}

/** S3's smallest part of a multipart upload, but for the last one. */
export const minPartSize = 5 * 1024 * 1024;

/** S3's longest lifetime of a presigned URL (SigV4): seven days. */
const maxPresignedSeconds = 7 * 24 * 60 * 60;

// Parts of a pending write uploaded at once: memory holds about this many parts, plus one
// being cut from the content.
const uploadQueueSize = 2;

/**
 * Opens a store of content in an S3 bucket: a key is an object. Writes stream through
 * lib-storage's Upload (multipart once the content passes a part), reads are ranged GETs.
 */
export function createS3Storage(options: S3StorageOptions): FileStorage {
  const { bucket, partSize } = options;
  if (!Number.isInteger(partSize) || partSize < minPartSize) {
    throw new Error(`S3 part size must be a whole number of bytes, at least ${minPartSize}`);
  }
  const client = new S3Client({
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(options.credentials !== undefined && { credentials: options.credentials }),
  });
  return {
    async create(key) {
      return createPendingUpload(client, bucket, key, partSize);
    },
    async size(key) {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return head.ContentLength ?? 0;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    read(key, range, signal) {
      return readObject(client, bucket, key, range, signal);
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    staging: createS3Staging({ client, bucket, partSize }),
    presignedUrl(key, download) {
      return presignDownload(client, bucket, key, download);
    },
    async close() {
      client.destroy();
    },
  };
}

/**
 * A pending write that feeds an Upload through a stream: a write resolves once the stream has
 * room (the Upload pulls as its queue of parts drains), commit ends the stream and waits for
 * the upload, abort ends it early so that the multipart upload is aborted.
 */
function createPendingUpload(
  client: S3Client,
  bucket: string,
  key: string,
  partSize: number,
): PendingWrite {
  const body = new PassThrough();
  const upload = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: body },
    partSize,
    queueSize: uploadQueueSize,
  });
  let failure: unknown;
  // Settles with the upload's error, or undefined once it is stored, so that a write that
  // failed and is never committed leaves no rejection unhandled.
  const settled = upload.done().then(
    () => undefined,
    (err: unknown) => {
      failure ??= err;
      // A write waiting for room learns of the failure from the stream's close.
      body.destroy();
      return err;
    },
  );
  return {
    async write(chunk) {
      if (body.destroyed) throw failure ?? new Error("the upload has ended");
      if (!body.write(chunk)) await roomIn(body, () => failure);
    },
    async commit() {
      body.end();
      const err = await settled;
      if (err !== undefined) throw err;
    },
    async abort() {
      if (failure !== undefined) return;
      // The Upload sees its body close before the end, sends AbortMultipartUpload once its
      // parts in flight are done, and only then settles: nothing is left under the key.
      body.destroy();
      const err = await settled;
      if (err === undefined) return;
      if ((err as NodeJS.ErrnoException).code !== "ERR_STREAM_PREMATURE_CLOSE") throw err;
    },
  };
}

/** Resolves when `body` drains; rejects with the upload's failure when it closes first. */
function roomIn(body: PassThrough, failure: () => unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      body.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      body.off("drain", onDrain);
      reject(failure() ?? new Error("the upload has ended"));
    };
    body.once("drain", onDrain);
    body.once("close", onClose);
  });
}

/**
 * Streams `range` of an object with one ranged GET (`bytes=first-last`, never a suffix range,
 * which would be counted from the end). Ending the iteration destroys the response, which frees
 * its connection; the socket reads only as fast as the consumer pulls.
 */
async function* readObject(
  client: S3Client,
  bucket: string,
  key: string,
  range: ByteRange,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  if (range.length === 0) return;
  const last = range.offset + range.length - 1;
  const response = await client.send(
    new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${range.offset}-${last}` }),
    signal === undefined ? {} : { abortSignal: signal },
  );
  const body = response.Body;
  if (!(body instanceof Readable)) throw new Error(`GET ${key} answered without a body stream`);
  if (response.ContentLength !== range.length) {
    body.destroy();
    throw new Error(
      `GET ${key} with range bytes=${range.offset}-${last} answered ${response.ContentLength} bytes`,
    );
  }
  if (signal !== undefined) addAbortSignal(signal, body);
  yield* body;
}

/** A GET URL for `key` that answers with the download's disposition and type until it expires. */
async function presignDownload(
  client: S3Client,
  bucket: string,
  key: string,
  download: PresignedDownload,
): Promise<string> {
  const expiresIn = Math.round((download.expiresAt.getTime() - Date.now()) / 1000);
  if (expiresIn < 1 || expiresIn > maxPresignedSeconds) {
    throw new Error(
      `a presigned URL expires between 1 s and ${maxPresignedSeconds} s from now, not ${expiresIn} s`,
    );
  }
  const command = new GetObjectCommand({
    Bucket: bucket,
    Key: key,
    ResponseContentDisposition: download.contentDisposition,
    ResponseContentType: download.contentType,
  });
  return getSignedUrl(client, command, { expiresIn });
}
