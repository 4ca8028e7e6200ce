import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { startFauxqs } from "fauxqs";
import S3rver from "s3rver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createS3Storage } from "./s3-storage.ts";
import type { FileStorage } from "./storage.ts";
import { defineStorageContract, type StorageContractOptions } from "./storage-contract.ts";

/** A running S3 REST server: where it listens, the credentials it takes, and how to stop it. */
interface S3Server {
  readonly endpoint: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  stop(): Promise<void>;
}

async function startS3rver(): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), "protomesh-s3rver-"));
  const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    // The one account s3rver knows.
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function startFauxqsS3(): Promise<S3Server> {
  const server = await startFauxqs({ port: 0, logger: false });
  return {
    endpoint: server.address,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    stop: () => server.stop(),
  };
}

/**
 * Runs the storage contract against a server started for the file, each test with a bucket
 * of its own, parts of 5 MiB (S3's minimum) so that megabytes of content span several.
 */
function defineAgainst(
  name: string,
  start: () => Promise<S3Server>,
  limits: Omit<StorageContractOptions, "open">,
): void {
  describe(name, () => {
    let server: S3Server;
    let admin: S3Client;
    let buckets = 0;
    beforeAll(async () => {
      server = await start();
      admin = new S3Client({
        endpoint: server.endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: server.credentials,
      });
    });
    afterAll(async () => {
      admin?.destroy();
      await server?.stop();
    });

    defineStorageContract(`S3 storage on ${name}`, {
      ...limits,
      async open() {
        buckets += 1;
        const bucket = `contract-${buckets}`;
        await admin.send(new CreateBucketCommand({ Bucket: bucket }));
        return { storage: storageOn(server, bucket), listAll: () => listKeys(admin, bucket) };
      },
    });
  });
}

/** An S3 store of `bucket` on `server`, with parts of 5 MiB, S3's minimum. */
function storageOn(server: S3Server, bucket: string): FileStorage {
  return createS3Storage({
    bucket,
    endpoint: server.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: server.credentials,
    partSize: 5 * 1024 * 1024,
  });
}

/** Every key of the bucket, sorted. */
async function listKeys(client: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return keys.sort();
}

defineAgainst("s3rver, which verifies no SigV4 signature", startS3rver, {
  noMultipartAbort: "s3rver has no AbortMultipartUpload",
  noFirstByteRange: "s3rver answers bytes=0-0 with the whole object",
  presigned: "disposition",
});

defineAgainst("fauxqs, which verifies no SigV4 signature", startFauxqsS3, {
  presigned: { ignoresDisposition: "fauxqs ignores response-content-disposition" },
});

describe("S3 storage on a server without its bucket (fauxqs)", () => {
  let server: S3Server;
  beforeAll(async () => {
    server = await startFauxqsS3();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("fails a write of several parts instead of waiting forever, and aborts it after", async () => {
    const storage = storageOn(server, "missing");
    const write = await storage.create("files/nowhere");
    const chunk = new Uint8Array(256 * 1024);
    const writing = (async () => {
      for (let i = 0; i < 80; i++) await write.write(chunk);
      await write.commit();
    })();
    await expect(writing).rejects.toThrow(/bucket/i);
    await write.abort();
    await storage.close();
  });
});
