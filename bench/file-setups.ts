import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { nodeBinary, repoRoot } from "../test/support/repo.ts";
import { coreBusyMicros, cpuMicros } from "./cpu.ts";
import { residentOf, watchPeaks } from "./memory.ts";
import { startPinned } from "./processes.ts";
import { signUp } from "./rest-calls.ts";
import { gatewayEnv, type SetupName, type SetupOptions, startSuite } from "./setups.ts";
import { download, type Transfer, type TransferRequest, upload } from "./transfer.ts";

/** A process of a file setup whose memory and CPU the suite follows. */
export type Role = "baseline" | "gateway" | "file" | "s3";

/** Which way a file went. */
export type Direction = "upload" | "download";

/** One file sent up or fetched back through one setup, and what it cost its processes. */
export interface FileMeasurement {
  readonly setup: SetupName;
  readonly direction: Direction;
  readonly bytes: number;
  readonly seconds: number;
  /** Megabytes (10^6 bytes) a second. */
  readonly mbPerSecond: number;
  /** Each process's peak resident memory during the transfer less its idle one, in bytes. */
  readonly extraRss: Partial<Record<Role, number>>;
  /** Each process's CPU time during the transfer, in seconds. */
  readonly cpuSeconds: Partial<Record<Role, number>>;
  /** The memory samples taken during the transfer. */
  readonly samples: number;
  /** The share of the transfer the servers' core gave to other work than the setup's own. */
  readonly otherShare: number;
}

/** What the file suite needs besides where the bench's processes run. */
export interface FileSuiteOptions extends SetupOptions {
  /** The size of the file each setup stores and serves back. */
  readonly fileBytes: number;
  /** The core of the bench itself (the client) and of the S3 server. */
  readonly loadCore: number;
}

/** A file setup ready to take the file: where it goes, how to fetch it back, who serves it. */
interface FileSetup {
  readonly name: SetupName;
  readonly uploadTo: TransferRequest;
  /** Where the stored file is fetched back, from the upload's answer; throws on a wrong one. */
  downloadFrom(sent: Transfer): TransferRequest;
  readonly pids: Partial<Record<Role, number>>;
}

// How often the processes' resident memory is read during a transfer.
const sampleIntervalMs = 50;
const bucket = "bench";
// The one account s3rver knows.
const s3Credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

/**
 * Starts the chosen file setups, then through each in turn uploads a file of the configured
 * size, generated as it goes, and downloads it back; fails on an HTTP error or a digest that
 * is not the one sent. Each transfer is printed as it ends.
 */
export async function runFileSuite(
  options: FileSuiteOptions,
  print: (measurement: FileMeasurement) => void,
): Promise<FileMeasurement[]> {
  const started = await startFileSetups(options);
  try {
    const measurements: FileMeasurement[] = [];
    for (const setup of started.setups) {
      const idle = idleRss(setup.pids);
      const up = await measure(setup, "upload", idle, options, () =>
        upload(setup.uploadTo, options.fileBytes),
      );
      print(up.measurement);
      const down = await measure(setup, "download", idle, options, () =>
        download(setup.downloadFrom(up.transfer)),
      );
      if (
        down.transfer.bytes !== options.fileBytes ||
        down.transfer.sha256 !== up.transfer.sha256
      ) {
        throw new Error(
          `${setup.name} served back ${down.transfer.bytes} bytes of sha256 ` +
            `${down.transfer.sha256}; sent ${options.fileBytes} of ${up.transfer.sha256}`,
        );
      }
      print(down.measurement);
      measurements.push(up.measurement, down.measurement);
    }
    return measurements;
  } finally {
    await started.stop();
  }
}

function idleRss(pids: FileSetup["pids"]): Map<Role, number> {
  return new Map(entriesOf(pids).map(([role, pid]) => [role, residentOf(pid).rss]));
}

function entriesOf(pids: FileSetup["pids"]): [Role, number][] {
  return Object.entries(pids) as [Role, number][];
}

/** Runs one transfer while sampling the setup's memory and reading its CPU time around it. */
async function measure(
  setup: FileSetup,
  direction: Direction,
  idle: ReadonlyMap<Role, number>,
  options: FileSuiteOptions,
  transfer: () => Promise<Transfer>,
): Promise<{ transfer: Transfer; measurement: FileMeasurement }> {
  const roles = entriesOf(setup.pids);
  const cpu = () => new Map(roles.map(([role, pid]) => [role, cpuMicros(pid)]));
  const watch = watchPeaks(
    roles.map(([, pid]) => pid),
    sampleIntervalMs,
  );
  const coreBefore = coreBusyMicros(options.core);
  const cpuBefore = cpu();
  const done = await transfer().catch((err: unknown) => {
    watch.cancel();
    throw err;
  });
  const cpuAfter = cpu();
  const coreUsed = coreBusyMicros(options.core) - coreBefore;
  const { peaks, samples } = watch.stop();
  const extraRss: Partial<Record<Role, number>> = {};
  const cpuSeconds: Partial<Record<Role, number>> = {};
  let ownMicros = 0;
  for (const [role, pid] of roles) {
    extraRss[role] = (peaks.get(pid) ?? 0) - (idle.get(role) ?? 0);
    const micros = (cpuAfter.get(role) ?? 0) - (cpuBefore.get(role) ?? 0);
    cpuSeconds[role] = micros / 1e6;
    // The S3 server runs on the load core: only the others are the servers' core's own work.
    if (role !== "s3") ownMicros += micros;
  }
  return {
    transfer: done,
    measurement: {
      setup: setup.name,
      direction,
      bytes: done.bytes,
      seconds: done.seconds,
      mbPerSecond: done.bytes / 1e6 / done.seconds,
      extraRss,
      cpuSeconds,
      samples,
      otherShare: Math.max(0, coreUsed - ownMicros) / (done.seconds * 1e6),
    },
  };
}

/**
 * Starts the user service (when a setup goes through the gateway) and each chosen setup's
 * processes: the baseline server, or a file service on its store with a gateway in front; the
 * servers on the servers' core, the S3 server on the load core, as a store on another machine
 * would be. Signs a user up through the first gateway.
 */
function startFileSetups(options: FileSuiteOptions) {
  return startSuite(options, async ({ pinned, atStop }) => {
    const { dir, fileBytes } = options;
    const user = options.names.some((name) => name !== "file-baseline")
      ? await pinned("services/user/main.js", {
          DATA_DIR: join(dir, "user"),
          ACCESS_TOKEN_TTL_S: String(24 * 3600),
          LOGIN_REQUIRE_VERIFIED_EMAIL: "false",
        })
      : undefined;
    let authorization: string | undefined;
    // A file service on a store, and a gateway in front of it that the user is signed up on.
    const startMesh = async (name: SetupName, storage: Record<string, string>) => {
      if (user === undefined) throw new Error("a file setup through the gateway needs users");
      const file = await pinned("services/file/main.js", {
        DATA_DIR: join(dir, name),
        USER_SERVICE_URL: user.url,
        FILE_MAX_BYTES: String(fileBytes),
        FILE_QUOTA_BYTES: String(fileBytes),
        ...storage,
      });
      const gateway = await pinned("gateway/main.js", {
        USER_SERVICE_URL: user.url,
        FILE_SERVICE_URL: file.url,
        MAX_UPLOAD_BYTES: String(fileBytes),
        ...gatewayEnv(options),
      });
      authorization ??= `Bearer ${(await signUp(gateway.url)).accessToken}`;
      return meshSetup(name, gateway.url, authorization, fileBytes, {
        gateway: gateway.pid,
        file: file.pid,
      });
    };

    const setups: FileSetup[] = [];
    for (const name of options.names) {
      switch (name) {
        case "file-baseline": {
          const files = join(dir, "baseline");
          await mkdir(files, { recursive: true });
          const server = await pinned("bench/baseline-file-server.js", { BASELINE_DIR: files });
          const url = `${server.url}/files/bench`;
          setups.push({
            name,
            uploadTo: { url },
            downloadFrom: () => ({ url }),
            pids: { baseline: server.pid },
          });
          break;
        }
        case "file-local":
          setups.push(await startMesh(name, { FILE_STORAGE: "local" }));
          break;
        case "file-s3": {
          const s3 = await startPinned({
            name: "bench/s3-server.js",
            core: options.loadCore,
            command: () => [nodeBinary(), join(repoRoot, "dist", "bench", "s3-server.js")],
            env: { S3_DIR: join(dir, "s3") },
          });
          atStop(() => s3.stop());
          await createBucket(s3.url);
          const setup = await startMesh(name, {
            FILE_STORAGE: "s3",
            FILE_S3_ENDPOINT: s3.url,
            FILE_S3_BUCKET: bucket,
            FILE_S3_FORCE_PATH_STYLE: "true",
            FILE_S3_ACCESS_KEY_ID: s3Credentials.accessKeyId,
            FILE_S3_SECRET_ACCESS_KEY: s3Credentials.secretAccessKey,
          });
          setups.push({ ...setup, pids: { ...setup.pids, s3: s3.pid } });
          break;
        }
        default:
          throw new Error(`${name} is not a setup of the file suite`);
      }
    }
    return { setups };
  });
}

/**
 * A setup through the gateway: the raw body to `POST /v1/files`, checked against the file
 * the service says it stored, then `GET /v1/files/{id}:download`, both with the user's token.
 */
function meshSetup(
  name: SetupName,
  gatewayUrl: string,
  authorization: string,
  fileBytes: number,
  pids: FileSetup["pids"],
): FileSetup {
  const headers = { authorization };
  return {
    name,
    uploadTo: { url: `${gatewayUrl}/v1/files?metadata.filename=bench.bin`, headers },
    downloadFrom(sent) {
      const stored = JSON.parse(sent.answer) as {
        id?: string;
        sizeBytes?: string;
        sha256?: string;
      };
      if (stored.sizeBytes !== String(fileBytes) || stored.sha256 !== sent.sha256) {
        throw new Error(
          `${name} stored ${stored.sizeBytes} bytes of sha256 ${stored.sha256}; ` +
            `sent ${fileBytes} of ${sent.sha256}`,
        );
      }
      return { url: `${gatewayUrl}/v1/files/${stored.id}:download`, headers };
    },
    pids,
  };
}

async function createBucket(endpoint: string): Promise<void> {
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: s3Credentials,
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}
