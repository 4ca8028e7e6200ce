import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { startFauxqs } from "fauxqs";
import S3rver from "s3rver";

/** A running S3 REST server: where it listens, the credentials it takes, and how to stop it. */
export interface S3Server {
  readonly endpoint: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  stop(): Promise<void>;
}

/** Starts s3rver, which keeps objects in a directory of its own. */
export async function startS3rver(): Promise<S3Server> {
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

/** Starts fauxqs, which keeps objects in memory. */
export async function startFauxqsS3(): Promise<S3Server> {
  const server = await startFauxqs({ port: 0, logger: false });
  return {
    endpoint: server.address,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    stop: () => server.stop(),
  };
}

/** Every key of the bucket, sorted. */
export async function listKeys(client: S3Client, bucket: string): Promise<string[]> {
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

/** A client of `server` for what a test does beside the store under test: buckets, listings. */
export function adminClientOf(server: S3Server): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: server.credentials,
  });
}
