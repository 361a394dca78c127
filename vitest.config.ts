import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ when a source is newer: tests run the operator and broker from it.
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Integration suites start their own mariadbd processes; running files one at a time keeps a
    // 2-core machine from timing out under contention.
    fileParallelism: false,
  },
});
