/**
 * vitest global setup: a throwaway PostgreSQL cluster on loopback for the PostgreSQL tests.
 *
 * - WA_TEST_PG_URL set: use that server as is.
 * - Otherwise, when PostgreSQL's server binaries are on the machine (Debian: /usr/lib/postgresql/<v>/bin),
 *   initdb a cluster in a temp dir (as the `postgres` user when running as root: initdb refuses root),
 *   start it on a free loopback port with password auth, and stop and delete it afterwards.
 * - Neither: the PostgreSQL tests are skipped, saying so; with CI=true or WA_REQUIRE_POSTGRES=1 that is an
 *   error instead (.ci/run makes PostgreSQL mandatory).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** An admin URL for a PostgreSQL database the tests may use, or null when PostgreSQL tests are skipped. */
    pgUrl: string | null;
    /** How to stop and start that cluster (null when it is not ours to control). */
    pgControl: { bin: string; data: string; log: string; options: string; asRoot: boolean } | null;
  }
}

const ADMIN_PASSWORD = 'wa-test-admin';

function findBinDir(): string | undefined {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    // pg_config is in libpq-dev, which the server package does not need: look where Debian installs servers.
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')));
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  project.provide('pgControl', null);
  if (process.env.WA_TEST_PG_URL) {
    project.provide('pgUrl', process.env.WA_TEST_PG_URL);
    return undefined;
  }
  const bin = findBinDir();
  if (!bin) {
    const required = process.env.CI === 'true' || process.env.WA_REQUIRE_POSTGRES === '1';
    if (required)
      throw new Error(
        'PostgreSQL is required (CI=true or WA_REQUIRE_POSTGRES=1) but no initdb was found; install postgresql-15',
      );
    console.warn(
      '\n[wa tests] PostgreSQL server binaries not found: the PostgreSQL tests are SKIPPED (install postgresql to run them)\n',
    );
    project.provide('pgUrl', null);
    return undefined;
  }

  const root = process.getuid?.() === 0;
  const asPostgres = (command: string, args: string[]): string =>
    root
      ? execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { encoding: 'utf8' })
      : execFileSync(command, args, { encoding: 'utf8' });

  const dir = mkdtempSync(join(tmpdir(), 'wa-pg-'));
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, `${ADMIN_PASSWORD}\n`, { mode: 0o600 });
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    chownSync(dir, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const port = await freePort();
  asPostgres(join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'wa_admin',
    '--pwfile',
    pwfile,
    '--auth',
    'scram-sha-256',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
  ]);
  // Tests, not durability: fsync off keeps the suite fast. Loopback only; sockets in the temp dir.
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`;
  asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', 'start', '-o', options]);
  project.provide('pgControl', { bin, data, log: join(dir, 'log'), options, asRoot: root });
  const admin = `postgres://wa_admin:${ADMIN_PASSWORD}@127.0.0.1:${port}`;
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: `${admin}/postgres` });
  await client.connect();
  await client.query('CREATE DATABASE wa_test');
  await client.end();
  console.log(`\n[wa tests] throwaway PostgreSQL on 127.0.0.1:${port} (${bin})\n`);
  project.provide('pgUrl', `${admin}/wa_test`);

  return () => {
    try {
      asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}
