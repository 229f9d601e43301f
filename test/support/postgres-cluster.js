// @ts-check
/**
 * A throwaway PostgreSQL cluster on loopback, for the test suite (test/setup/postgres.ts) and the
 * benchmarks: initdb in a temp dir (as the `postgres` user when running as root: initdb refuses root),
 * password auth, a free port on 127.0.0.1, and a database `wa_test`. Plain JS so benchmarks can use it.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const ADMIN_PASSWORD = 'wa-test-admin';

/** The directory with initdb and pg_ctl, or undefined when the server is not installed. */
export function findPostgresBin() {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dir && existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    // pg_config is in libpq-dev, which the server does not need: look where Debian installs servers.
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, 'bin')).find((dir) => existsSync(join(dir, 'initdb')));
}

/** @returns {Promise<number>} */
const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

/**
 * @param {{ bin: string, durable?: boolean }} options durable: keep fsync on (benchmarks); tests turn it off.
 * @returns {Promise<{ url: string, control: { bin: string, data: string, log: string, options: string, asRoot: boolean }, stop: () => void }>}
 */
export async function startPostgresCluster({ bin, durable = false }) {
  const root = process.getuid?.() === 0;
  /** @param {string} command @param {string[]} args */
  const asPostgres = (command, args) =>
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
  const speed = durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off';
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c max_connections=300${speed}`;
  const log = join(dir, 'log');
  asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '60', 'start', '-o', options]);
  const admin = `postgres://wa_admin:${ADMIN_PASSWORD}@127.0.0.1:${port}`;
  const client = new pg.Client({ connectionString: `${admin}/postgres` });
  await client.connect();
  await client.query('CREATE DATABASE wa_test');
  await client.end();
  return {
    url: `${admin}/wa_test`,
    control: { bin, data, log, options, asRoot: root },
    stop: () => {
      try {
        asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
