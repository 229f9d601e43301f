import { defineConfig } from 'vitest/config';

// Tests by kind, each a vitest project (`npx vitest run --project unit`):
//   unit      in-process: pure logic, the CLI's run(io) on fake streams, the daemon on scripted sockets
//   contract  one storage suite over every backend (SQLite, PostgreSQL, both sealed), migrations, crash safety
//   cli       the real `wa` binary (spawned over dist/) without a WhatsApp server
//   e2e       real Baileys in real `wa` processes against the loopback test server (test/wa-server/)
const kinds = {
  unit: ['test/unit/**/*.test.ts'],
  contract: ['test/contract/**/*.test.ts'],
  cli: ['test/cli/**/*.test.ts'],
  e2e: ['test/e2e/**/*.test.ts', 'test/wa-server/**/*.test.ts'],
};

const shared = {
  // CLI and end-to-end tests spawn real processes on a shared 2-core machine: generous, not tight.
  testTimeout: 60_000,
  hookTimeout: 60_000,
  restoreMocks: true,
  // Files run in parallel workers; each test makes its own temp dir, database and server port.
  pool: 'forks',
  maxWorkers: 2,
} as const;

export default defineConfig({
  test: {
    ...shared,
    // Once for the whole run (projects do not extend the root, or each would start its own cluster).
    globalSetup: ['test/setup/postgres.ts'],
    projects: Object.entries(kinds).map(([name, include]) => ({ test: { ...shared, name, include } })),
  },
});
