import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/postgres.ts'],
    // CLI and end-to-end tests spawn real processes on a shared 2-core machine: generous, not tight.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    restoreMocks: true,
    // Files run in parallel workers; each test makes its own temp dir, database and server port.
    pool: 'forks',
    maxWorkers: 2,
  },
});
