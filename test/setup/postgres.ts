/**
 * vitest global setup: a throwaway PostgreSQL cluster on loopback for the PostgreSQL tests.
 *
 * - WA_TEST_PG_URL set: use that server as is.
 * - Otherwise, when PostgreSQL's server binaries are on the machine (Debian: /usr/lib/postgresql/<v>/bin),
 *   start a cluster (test/support/postgres-cluster.js) and stop and delete it afterwards.
 * - Neither: the PostgreSQL tests are skipped, saying so; with CI=true or WA_REQUIRE_POSTGRES=1 that is an
 *   error instead (.ci/run makes PostgreSQL mandatory).
 */
import type { TestProject } from 'vitest/node';
import { findPostgresBin, startPostgresCluster } from '../support/postgres-cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** An admin URL for a PostgreSQL database the tests may use, or null when PostgreSQL tests are skipped. */
    pgUrl: string | null;
  }
}

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  if (process.env.WA_TEST_PG_URL) {
    project.provide('pgUrl', process.env.WA_TEST_PG_URL);
    return undefined;
  }
  const bin = findPostgresBin();
  if (!bin) {
    if (process.env.CI === 'true' || process.env.WA_REQUIRE_POSTGRES === '1') {
      throw new Error(
        'PostgreSQL is required (CI=true or WA_REQUIRE_POSTGRES=1) but no initdb was found; install postgresql-15',
      );
    }
    console.warn(
      '\n[wa tests] PostgreSQL server binaries not found: the PostgreSQL tests are SKIPPED (install postgresql to run them)\n',
    );
    project.provide('pgUrl', null);
    return undefined;
  }
  const cluster = await startPostgresCluster({ bin });
  console.log(`\n[wa tests] throwaway PostgreSQL: ${cluster.url.replace(/:[^:@/]+@/, ':***@')} (${bin})\n`);
  project.provide('pgUrl', cluster.url);
  return cluster.stop;
}
