import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { type FauxqsServer, startFauxqs } from "fauxqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, loadConfig } from "../../../kit/config.ts";
import { openStorage, storageConfigShape } from "./open-storage.ts";

const schema = z.object({ ...storageConfigShape, DATA_DIR: z.string() });

describe("openStorage", () => {
  let dataDir: string;
  let fauxqs: FauxqsServer;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "protomesh-open-storage-"));
    fauxqs = await startFauxqs({ port: 0, logger: false });
  });
  afterAll(async () => {
    await fauxqs?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("keeps content under DATA_DIR/files by default", async () => {
    const storage = await openStorage(loadConfig(schema, { DATA_DIR: dataDir }));
    const write = await storage.create("files/default");
    await write.write(Buffer.from("kept locally"));
    await write.commit();
    expect(await readFile(join(dataDir, "files", "files", "default"), "utf8")).toBe("kept locally");
    await storage.close();
  });

  it("keeps content in the S3 bucket the variables name", async () => {
    const admin = new S3Client({
      endpoint: fauxqs.address,
      region: "eu-west-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    await admin.send(new CreateBucketCommand({ Bucket: "configured" }));
    const config = loadConfig(schema, {
      DATA_DIR: dataDir,
      FILE_STORAGE: "s3",
      FILE_S3_BUCKET: "configured",
      FILE_S3_ENDPOINT: fauxqs.address,
      FILE_S3_REGION: "eu-west-1",
      FILE_S3_FORCE_PATH_STYLE: "true",
      FILE_S3_ACCESS_KEY_ID: "test",
      FILE_S3_SECRET_ACCESS_KEY: "test",
    });
    const storage = await openStorage(config);
    const write = await storage.create("files/in-s3");
    await write.write(Buffer.from("kept in the bucket"));
    await write.commit();
    const object = await admin.send(
      new GetObjectCommand({ Bucket: "configured", Key: "files/in-s3" }),
    );
    expect(await object.Body?.transformToString()).toBe("kept in the bucket");
    await storage.close();
    admin.destroy();
  });

  it("refuses S3 without a bucket, naming FILE_S3_BUCKET", async () => {
    const config = loadConfig(schema, { DATA_DIR: dataDir, FILE_STORAGE: "s3" });
    await expect(openStorage(config)).rejects.toThrow(ConfigError);
    await expect(openStorage(config)).rejects.toThrow(
      /FILE_S3_BUCKET: required when FILE_STORAGE is s3/,
    );
  });

  it("refuses an access key without its secret, naming the missing one", async () => {
    const config = loadConfig(schema, {
      DATA_DIR: dataDir,
      FILE_STORAGE: "s3",
      FILE_S3_BUCKET: "b",
      FILE_S3_ACCESS_KEY_ID: "key",
    });
    await expect(openStorage(config)).rejects.toThrow(/FILE_S3_SECRET_ACCESS_KEY: required/);
  });

  it.each([
    [{ FILE_S3_PART_SIZE_BYTES: "1048576" }, /FILE_S3_PART_SIZE_BYTES: must be at least 5242880/],
    [{ FILE_S3_ENDPOINT: "minio:9000" }, /FILE_S3_ENDPOINT/],
    [{ FILE_S3_FORCE_PATH_STYLE: "maybe" }, /FILE_S3_FORCE_PATH_STYLE/],
    [{ FILE_STORAGE: "ftp" }, /FILE_STORAGE/],
  ])("refuses %j at load, naming the variable", (env, message) => {
    expect(() => loadConfig(schema, { DATA_DIR: dataDir, ...env })).toThrow(message);
  });
});
