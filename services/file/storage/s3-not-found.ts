import { S3ServiceException } from "@aws-sdk/client-s3";

/** Whether an S3 call failed because its object, or its multipart upload, is not there. */
export function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404;
}
