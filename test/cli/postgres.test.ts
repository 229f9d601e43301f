import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { makeBaileysFolder } from '../helpers/auth-folder.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);

describe.skipIf(!pgUrl)('wa on PostgreSQL', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let schema: Awaited<ReturnType<typeof freshSchema>>;
  beforeEach(async () => {
    dir = await tempDir();
    schema = await freshSchema();
  });
  afterEach(async () => {
    await schema.drop();
    await dir.remove();
  });

  it('selects PostgreSQL from --db, WA_DB or DATABASE_URL, and never prints the password', async () => {
    expect((await runWa(['--db', schema.url, 'add', 'a'])).code).toBe(0);
    expect((await runWa(['add', 'b'], { env: { WA_DB: schema.url } })).code).toBe(0);
    const res = await runWa(['status', '--json'], { env: { DATABASE_URL: schema.url }, cwd: dir.path });
    expect(res.code).toBe(0);
    const doc = JSON.parse(res.stdout) as { db: string; sessions: Array<{ id: string }> };
    expect(doc.sessions.map((s) => s.id)).toEqual(['a', 'b']);
    expect(doc.db).toMatch(/^postgres:\/\/wa_admin:\*\*\*@127\.0\.0\.1:\d+\/wa_test/);
    expect(res.stdout + res.stderr).not.toContain('wa-test-admin');
  });

  it('never prints a password given as a query parameter (status --json db, errors)', async () => {
    const url = new URL(schema.url);
    const password = decodeURIComponent(url.password);
    url.password = '';
    url.searchParams.set('password', password);
    expect((await runWa(['--db', url.toString(), 'add', 'a'])).code).toBe(0);
    const res = await runWa(['--db', url.toString(), 'status', '--json']);
    expect(res.code).toBe(0);
    const doc = JSON.parse(res.stdout) as { db: string; sessions: Array<{ id: string }> };
    expect(doc.sessions.map((s) => s.id)).toEqual(['a']);
    expect(doc.db).toContain('password=***');
    expect(res.stdout + res.stderr).not.toContain(password);
    const unknown = await runWa(['--db', url.toString(), 'status', 'nobody']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('password=***');
    expect(unknown.stderr).not.toContain(password);
  });

  it('moves a session between databases byte for byte: folder → SQLite → folder → PostgreSQL → folder', async () => {
    const folder = join(dir.path, 'baileys');
    await makeBaileysFolder(folder);
    const sqlite = join(dir.path, 'laptop.db');
    expect((await runWa(['--db', sqlite, 'import', 'bot', folder])).code).toBe(0);
    expect((await runWa(['--db', sqlite, 'export', 'bot', join(dir.path, 'from-sqlite')])).code).toBe(0);
    expect((await runWa(['--db', schema.url, 'import', 'bot', join(dir.path, 'from-sqlite')])).code).toBe(0);
    expect((await runWa(['--db', schema.url, 'export', 'bot', join(dir.path, 'from-postgres')])).code).toBe(0);
    await exec('diff', ['-r', folder, join(dir.path, 'from-postgres')]);
    const status = JSON.parse((await runWa(['--db', schema.url, 'status', 'bot', '--json'])).stdout) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({ state: 'paired', phone: '15551234567' });
  });

  it('says what is wrong when the server is unreachable, the password is wrong, or the database is missing (exit 5)', async () => {
    const url = new URL(pgUrl!);
    const unreachable = await runWa(['--db', 'postgres://wa:x@127.0.0.1:9/nowhere', 'status']);
    expect(unreachable).toMatchObject({ code: 5, stdout: '' });
    expect(unreachable.stderr).toContain('Error: cannot reach PostgreSQL at postgres://wa:***@127.0.0.1:9/nowhere');

    const badPassword = new URL(url);
    badPassword.password = 'wrong';
    const auth = await runWa(['--db', badPassword.toString(), 'status']);
    expect(auth.code).toBe(5);
    expect(auth.stderr).toContain('PostgreSQL rejected the password');
    expect(auth.stderr).not.toContain('wrong');

    const missing = new URL(url);
    missing.pathname = '/no_such_db';
    const res = await runWa(['--db', missing.toString(), 'status']);
    expect(res.code).toBe(5);
    expect(res.stderr).toContain('does not exist');
    expect(res.stderr).toContain('Try: create it first');
  });

  it('refuses a database written by a newer schema (exit 5)', async () => {
    await runWa(['--db', schema.url, 'add', 'a']);
    const client = new pg.Client({ connectionString: schema.url });
    await client.connect();
    await client.query(`UPDATE wa_meta SET value = '99' WHERE key = 'schema_version'`);
    await client.end();
    const res = await runWa(['--db', schema.url, 'status']);
    expect(res.code).toBe(5);
    expect(res.stderr).toContain('was written by a newer wa (schema v99');
  });

  it('survives its connection dying while a transaction holds it (no unheard pg error event)', async () => {
    const store = await PostgresStore.open(schema.url);
    // The window between two statements of a transaction, stretched: node-postgres emits 'error' on the
    // checked-out client, which kills the process unless someone listens.
    const tx = (store as unknown as { tx: (work: (c: pg.PoolClient) => Promise<void>) => Promise<void> }).tx.bind(
      store,
    );
    const pending = tx(async (client) => {
      await new Promise((r) => setTimeout(r, 700));
      await client.query('SELECT 1');
    });
    await new Promise((r) => setTimeout(r, 200));
    const admin = new pg.Client({ connectionString: pgUrl! });
    await admin.connect();
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [
      schema.schema,
    ]);
    await admin.end();
    await expect(pending).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
    expect(await store.readValues('s', ['k'])).toEqual(new Map());
    await store.close();
  });

  it('keeps working after its database connections are killed (a server restart, as clients see it)', async () => {
    const store = await PostgresStore.open(schema.url);
    await store.writeValues('s', [['pre-key-1', '"a"']]);
    const admin = new pg.Client({ connectionString: pgUrl! });
    await admin.connect();
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [
      schema.schema,
    ]);
    await admin.end();
    await new Promise((r) => setTimeout(r, 200)); // the pool notices its dead idle clients and drops them
    await store.writeValues('s', [['pre-key-2', '"b"']]);
    expect(await store.readValues('s', ['pre-key-1', 'pre-key-2'])).toEqual(
      new Map([
        ['pre-key-1', '"a"'],
        ['pre-key-2', '"b"'],
      ]),
    );
    await store.close();
  });
});

describe('database URLs (no server needed)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('redacts query-string secrets and user-info passwords in errors', async () => {
    const key = join(dir.path, 'secret-client.key');
    await writeFile(key, 'not really a key');
    const url = `postgres://wa:pw-in-userinfo@127.0.0.1:9/db?password=s3cret&sslpassword=k3y-pass&sslkey=${key}`;
    const res = await runWa(['--db', url, 'status']);
    expect(res.code).toBe(5);
    expect(res.stderr).toContain('cannot reach PostgreSQL at postgres://wa:***@127.0.0.1:9/db?password=***');
    const missing = await runWa(['--db', url.replace(key, '/nonexistent/secret-client.key'), 'status']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read a file named in the PostgreSQL URL');
    for (const secret of ['pw-in-userinfo', 's3cret', 'k3y-pass', 'secret-client.key']) {
      expect(res.stdout + res.stderr + missing.stdout + missing.stderr).not.toContain(secret);
    }
  });

  it('refuses any other URL scheme (a postgress:// typo) with exit 2, creating nothing', async () => {
    for (const db of ['postgress://u:s3cret@host/db', 'mysql://u@host/db', 'file:///tmp/x.db']) {
      const res = await runWa(['--db', db, 'add', 'bot', '--json'], { cwd: dir.path });
      expect(res.code, db).toBe(2);
      expect(res.stderr).toContain('unsupported database URL');
      expect(res.stderr).not.toContain('s3cret');
      expect(await readdir(dir.path)).toEqual([]);
    }
    const env = await runWa(['status'], { cwd: dir.path, env: { WA_DB: 'postgress://u@host/db' } });
    expect(env.code).toBe(2);
  });

  it('calls a PostgreSQL URL that does not parse (a bad port) a usage error, not a bug', async () => {
    for (const db of ['postgres://u:s3cret@h:99999/db', 'postgresql://u@[::1/db']) {
      const res = await runWa(['--db', db, 'status']);
      expect(res.code, db).toBe(2);
      expect(res.stderr).toContain('invalid PostgreSQL URL');
      expect(res.stderr).not.toContain('This is a bug');
      expect(res.stderr).not.toContain('s3cret');
    }
  });
});
