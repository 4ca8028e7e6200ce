/** The part of s3rver (which ships no types) that the S3 storage tests use. */
declare module "s3rver" {
  import type { AddressInfo } from "node:net";

  interface S3rverOptions {
    readonly address?: string;
    readonly port?: number;
    readonly silent?: boolean;
    /** Where the server keeps its buckets. */
    readonly directory: string;
  }

  /** An S3 REST server over a local directory. */
  export default class S3rver {
    constructor(options: S3rverOptions);
    /** Listens, and resolves with the address it listens on. */
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
}
