import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';

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

const control = inject('pgControl');

/** Stops the throwaway cluster, keeps it down for `downMs`, and starts it again (a database restart). */
export async function restartPostgres(downMs: number): Promise<void> {
  if (!control) throw new Error('the PostgreSQL cluster is not ours to restart');
  const pgCtl = (args: string[]): void => {
    const command = join(control.bin, 'pg_ctl');
    if (control.asRoot) execFileSync('runuser', ['-u', 'postgres', '--', command, ...args]);
    else execFileSync(command, args);
  };
  pgCtl(['-D', control.data, '-m', 'fast', '-w', 'stop']);
  await new Promise((resolve) => setTimeout(resolve, downMs));
  pgCtl(['-D', control.data, '-l', control.log, '-w', '-t', '60', 'start', '-o', control.options]);
}

export const canRestartPostgres = control !== null;
