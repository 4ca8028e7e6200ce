// buf curl against each built service process: it discovers the schema through server
// reflection (v1 and v1alpha) and calls health over gRPC, Connect and gRPC-Web.
import { describe, it } from "vitest";
import { runBuf } from "./support/process.ts";
import { servicesUnderTest, useServiceProcesses } from "./support/services.ts";

const urlOf = useServiceProcesses();

const h2c = ["--protocol", "grpc", "--http2-prior-knowledge"];

describe.each(servicesUnderTest)("$name service process, seen by buf curl", (s) => {
  it.concurrent("lists its service, health and both reflection services", async ({ expect }) => {
    const { stdout, stderr, code } = await runBuf([
      "curl",
      ...h2c,
      "--list-services",
      urlOf(s.name),
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout.trim().split("\n").sort()).toEqual(
      [
        s.service.typeName,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ].sort(),
    );
  });

  it.concurrent("lists every method of its service", async ({ expect }) => {
    const { stdout, code } = await runBuf(["curl", ...h2c, "--list-methods", urlOf(s.name)]);
    expect(code).toBe(0);
    const listed = stdout.trim().split("\n");
    const expected = s.service.methods.map((m) => `${s.service.typeName}/${m.name}`);
    expect(expected.length).toBeGreaterThan(3);
    expect(listed).toEqual(expect.arrayContaining(expected));
    expect(listed).toContain("grpc.health.v1.Health/Check");
    if (s.name === "user") expect(listed).toContain("protomesh.user.v1.UserService/Register");
  });

  const protocols = [
    ["grpc", "--http2-prior-knowledge"],
    ["connect", null],
    ["grpcweb", null],
  ] as const;
  const combos = protocols.flatMap(([protocol, extra]) =>
    (["grpc-v1", "grpc-v1alpha"] as const).map((reflect) => ({ protocol, extra, reflect })),
  );
  it.concurrent.for(combos)(
    "answers Health/Check with SERVING over $protocol, schema from $reflect reflection",
    async ({ protocol, extra, reflect }, { expect }) => {
      const args = ["curl", "--protocol", protocol, ...(extra ? [extra] : [])];
      args.push("--reflect-protocol", reflect, "-d", "{}");
      args.push(`${urlOf(s.name)}/grpc.health.v1.Health/Check`);
      const { stdout, stderr, code } = await runBuf(args);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
    },
  );

  it.concurrent(`refuses ${s.protectedMethod} without a token, saying so`, async ({ expect }) => {
    const url = `${urlOf(s.name)}/${s.service.typeName}/${s.protectedMethod}`;
    const { stdout, stderr, code } = await runBuf(["curl", ...h2c, "-d", "{}", url]);
    // buf curl exits with 8 × the RPC code: 16 (unauthenticated) × 8.
    expect(code).toBe(128);
    expect(stdout).toBe("");
    expect(JSON.parse(stderr)).toEqual({
      code: "unauthenticated",
      message: "missing bearer token",
    });
  });
});
