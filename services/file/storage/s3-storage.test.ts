import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adminClientOf,
  listKeys,
  type S3Server,
  startFauxqsS3,
  startS3rver,
} from "../../../test/support/s3-servers.ts";
import { createS3Storage } from "./s3-storage.ts";
import type { FileStorage } from "./storage.ts";
import { defineStorageContract, type StorageContractOptions } from "./storage-contract.ts";

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
      admin = adminClientOf(server);
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
