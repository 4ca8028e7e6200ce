import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { SearchBooksRequestSchema } from "../gateway/testdata/gen/protomesh/gatewaytest/v1/gatewaytest_pb.ts";
import { UploadRequestSchema } from "../gen/protomesh/file/v1/file_pb.ts";
import { CreateTaskRequestSchema } from "../gen/protomesh/task/v1/task_pb.ts";
import { UpdateMeRequestSchema } from "../gen/protomesh/user/v1/user_pb.ts";
import { nulFieldOf, refuseNul } from "./nul-check-interceptor.ts";

describe("the NUL check", () => {
  it("names the first string holding a NUL, however deep: nested, listed, mapped, in a oneof", () => {
    const task = (fields: object) => create(CreateTaskRequestSchema, { task: fields });
    expect(nulFieldOf(CreateTaskRequestSchema, task({ title: "a\0b" }), "")).toBe("task.title");
    expect(nulFieldOf(CreateTaskRequestSchema, task({ tags: ["ok", "b\0"] }), "")).toBe(
      "task.tags[1]",
    );
    const mask = create(UpdateMeRequestSchema, { updateMask: { paths: ["display\0name"] } });
    expect(nulFieldOf(UpdateMeRequestSchema, mask, "")).toBe("update_mask.paths[0]");
    const labels = (entries: Record<string, string>) =>
      create(SearchBooksRequestSchema, { labels: entries });
    expect(nulFieldOf(SearchBooksRequestSchema, labels({ k: "v\0" }), "")).toBe("labels[k]");
    expect(nulFieldOf(SearchBooksRequestSchema, labels({ "k\0": "v" }), "")).toBe("labels");
    const upload = create(UploadRequestSchema, {
      payload: { case: "metadata", value: { filename: "x\0.txt" } },
    });
    expect(nulFieldOf(UploadRequestSchema, upload, "")).toBe("metadata.filename");
  });

  it("passes strings without NUL and bytes with one", () => {
    const clean = create(CreateTaskRequestSchema, { task: { title: "fine", tags: ["a"] } });
    expect(nulFieldOf(CreateTaskRequestSchema, clean, "")).toBeUndefined();
    const chunk = create(UploadRequestSchema, {
      payload: { case: "chunk", value: new Uint8Array([0, 1, 0]) },
    });
    expect(nulFieldOf(UploadRequestSchema, chunk, "")).toBeUndefined();
  });

  it("refuses as InvalidArgument with a message naming the field", () => {
    const bad = create(CreateTaskRequestSchema, { task: { description: "\0" } });
    expect(() => refuseNul(CreateTaskRequestSchema, bad)).toThrow(
      new ConnectError("task.description: must not contain NUL characters", Code.InvalidArgument),
    );
  });
});
