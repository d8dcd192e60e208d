import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start real processes (redis-server, switchboard, stand-in SFUs) on free
    // ports; running files in parallel on a 2-core machine makes timing-based assertions flaky.
    fileParallelism: false,
  },
});
