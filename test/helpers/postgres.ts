import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { findPostgresBin, startPostgresCluster } from '../support/postgres-cluster.js';

/** The throwaway cluster's admin URL from test/setup/postgres.ts, or null when PostgreSQL tests are skipped. */
export const pgUrl: string | null = inject('pgUrl');

/** A PostgreSQL URL whose default schema is a fresh, empty schema of its own; drop() removes it. */
export async function freshSchema(): Promise<{ url: string; schema: string; drop: () => Promise<void> }> {
  if (!pgUrl) throw new Error('no PostgreSQL for tests');
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const url = new URL(pgUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  // Tagged, so a test can kill exactly its own connections and never another test's.
  url.searchParams.set('application_name', schema);
  return {
    url: url.toString(),
    schema,
    drop: async () => {
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

/**
 * A PostgreSQL cluster of the test's own (a few seconds to start), for tests that stop or restart the
 * server: doing that to the shared cluster would break every other test running at the same time.
 */
export async function privateCluster(): Promise<{
  url: string;
  restart: (downMs: number) => Promise<void>;
  /** SIGSTOP (or SIGCONT) the server and every backend: the database hangs without closing a connection. */
  freeze: (frozen: boolean) => void;
  stop: () => void;
}> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('no PostgreSQL server binaries');
  const cluster = await startPostgresCluster({ bin });
  const { control } = cluster;
  const pgCtl = (args: string[]): void => {
    const command = join(control.bin, 'pg_ctl');
    if (control.asRoot) execFileSync('runuser', ['-u', 'postgres', '--', command, ...args]);
    else execFileSync(command, args);
  };
  const processes = (): number[] => {
    const postmaster = Number(readFileSync(join(control.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.split('\n');
    return [postmaster, ...children.filter(Boolean).map(Number)];
  };
  return {
    url: cluster.url,
    stop: () => {
      try {
        for (const pid of processes()) process.kill(pid, 'SIGCONT');
      } catch {
        // not running
      }
      cluster.stop();
    },
    freeze(frozen) {
      for (const pid of processes()) process.kill(pid, frozen ? 'SIGSTOP' : 'SIGCONT');
    },
    async restart(downMs) {
      pgCtl(['-D', control.data, '-m', 'fast', '-w', 'stop']);
      await new Promise((resolve) => setTimeout(resolve, downMs));
      pgCtl(['-D', control.data, '-l', control.log, '-w', '-t', '60', 'start', '-o', control.options]);
    },
  };
}
