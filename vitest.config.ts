import { defineConfig } from "vitest/config";

// Tests in kit/ that start compiled processes: they need the end-to-end project's build.
const processTests = [
  "kit/async-bind.test.ts",
  "kit/balance/transport.test.ts",
  "kit/launcher/**/*.test.ts",
  "kit/registry/consul*.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["{kit,gateway}/**/*.test.ts"],
          exclude: processTests,
        },
      },
      {
        extends: true,
        test: { name: "service", include: ["services/**/*.test.ts"] },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/**/*.test.ts", ...processTests],
          globalSetup: ["test/support/build-dist.ts"],
        },
      },
    ],
  },
});
