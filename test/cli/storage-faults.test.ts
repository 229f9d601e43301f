import Database from 'better-sqlite3';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION } from '../../src/store/sqlite.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';

// Root ignores file permissions, so read-only cases run the CLI as 'nobody' when the suite runs as root.
const asUnprivileged = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

describe('storage faults', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let db: string;
  beforeEach(async () => {
    dir = await tempDir();
    db = join(dir.path, 'wa.db');
  });
  afterEach(() => dir.remove());

  it('refuses a file that is not a SQLite database (exit 5) and leaves it untouched', async () => {
    await writeFile(db, 'these are my notes, not a database\n'.repeat(200));
    for (const args of [['status'], ['add', 'x'], ['status', 'x']]) {
      const res = await runWa(['--db', db, ...args]);
      expect(res).toMatchObject({ code: 5, stdout: '' });
      expect(res.stderr).toContain(`Error: ${db} is not a SQLite database`);
    }
    expect(await readFile(db, 'utf8')).toBe('these are my notes, not a database\n'.repeat(200));
  });

  it('refuses a read-only database for writes (exit 5) but still reports status from it', async () => {
    expect((await runWa(['--db', db, 'add', 'kept'])).code).toBe(0);
    await chmod(dir.path, 0o777); // the directory stays writable: SQLite can create its -shm file there
    await chmod(db, 0o444);
    const add = await runWa(['--db', db, 'add', 'new'], asUnprivileged);
    expect(add).toMatchObject({ code: 5, stdout: '' });
    expect(add.stderr).toContain(`Error: cannot write to the database ${db} (read-only file or directory`);
    const status = await runWa(['--db', db, 'status', '--json'], asUnprivileged);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ sessions: [{ id: 'kept' }] });
  });

  it('explains a read-only database in a read-only directory (exit 5)', async () => {
    expect((await runWa(['--db', db, 'add', 'kept'])).code).toBe(0);
    await chmod(dir.path, 0o755);
    await chmod(db, 0o444);
    const status = await runWa(['--db', db, 'status'], asUnprivileged);
    expect(status).toMatchObject({ code: 5, stdout: '' });
    expect(status.stderr).toMatch(/Error: cannot (open|write to) the database/);
    expect(status.stderr).toContain('Try: ');
  });

  it('reports a database directory that cannot be created (exit 5)', async () => {
    await writeFile(join(dir.path, 'plain-file'), '');
    const res = await runWa(['--db', join(dir.path, 'plain-file', 'sub', 'wa.db'), 'add', 'x']);
    expect(res).toMatchObject({ code: 5, stdout: '' });
    expect(res.stderr).toContain('cannot create the directory for the database');
  });

  it('reports a --db that is a directory (exit 2)', async () => {
    await mkdir(join(dir.path, 'adir'));
    const res = await runWa(['--db', join(dir.path, 'adir'), 'add', 'x']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('is a directory');
  });

  it('refuses a database written by a newer schema (exit 5) without touching it', async () => {
    await runWa(['--db', db, 'add', 'a']);
    const raw = new Database(db);
    raw.pragma('user_version = 99');
    raw.close();
    for (const args of [['status'], ['add', 'b']]) {
      const res = await runWa(['--db', db, ...args]);
      expect(res.code).toBe(5);
      expect(res.stderr).toContain('was written by a newer wa (schema v99');
      expect(res.stderr).toContain('Try: upgrade wa');
    }
    const check = new Database(db, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(99);
    expect(check.prepare('SELECT id FROM wa_sessions').pluck().all()).toEqual(['a']);
    check.close();
  });

  it('names the session and key of corrupt creds, still listing every other session', async () => {
    await runWa(['--db', db, 'add', 'good']);
    await runWa(['--db', db, 'add', 'bad']);
    const raw = new Database(db);
    raw
      .prepare(
        "INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ('bad', 'creds', '{\"noiseKey\":{\"priv')",
      )
      .run();
    raw.close();
    // The list reads only the registry, so one damaged session cannot hide or break the others.
    const list = await runWa(['--db', db, 'status', '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual([
      'bad',
      'good',
    ]);
    expect((await runWa(['--db', db, 'status', 'good'])).code).toBe(3);
    // Shown alone, the session's creds are checked: exit 5 naming the session and the key.
    const one = await runWa(['--db', db, 'status', 'bad', '--json']);
    expect(one.code).toBe(5);
    expect(JSON.parse(one.stdout)).toMatchObject({
      id: 'bad',
      error: "session 'bad': stored value 'creds' is not valid JSON",
    });
    expect(one.stderr).toContain("Error: session 'bad': stored value 'creds' is not valid JSON");
    expect((await runWa(['--db', db, 'status', 'bad'])).stdout).toMatch(/^error:\s+session 'bad'/m);
    // Export copies the bytes as stored, corrupt or not: it is how the data can be rescued by hand.
    expect((await runWa(['--db', db, 'export', 'bad', join(dir.path, 'out')])).code).toBe(0);
    expect(await readFile(join(dir.path, 'out', 'creds.json'), 'utf8')).toBe('{"noiseKey":{"priv');
  });

  it('adopts a seed database (only whatsapp_auth) in place, keeping every row', async () => {
    const seed = new Database(db);
    seed.exec(`CREATE TABLE whatsapp_auth (session_id TEXT NOT NULL, data_key TEXT NOT NULL, data_value TEXT NOT NULL,
      updated_at DATETIME DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (session_id, data_key))`);
    const insert = seed.prepare('INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES (?, ?, ?)');
    insert.run(
      'legacy',
      'creds',
      JSON.stringify({ me: { id: '4477001122:9@s.whatsapp.net', name: 'Old Bot' }, account: { details: 'x' } }),
    );
    insert.run('legacy', 'pre-key-1', '{"public":{"type":"Buffer","data":"AA=="}}');
    insert.run('half', 'creds', JSON.stringify({ me: { id: '1@s.whatsapp.net', name: '~' } }));
    const before = seed.prepare('SELECT * FROM whatsapp_auth ORDER BY session_id, data_key').all();
    seed.close();

    const res = await runWa(['--db', db, 'status', '--json']);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      sessions: [
        { id: 'half', state: 'unpaired', jid: null },
        { id: 'legacy', state: 'paired', jid: '4477001122:9@s.whatsapp.net', phone: '4477001122', name: 'Old Bot' },
      ],
    });
    expect((await runWa(['--db', db, 'status', 'legacy'])).code).toBe(0);
    const after = new Database(db, { readonly: true });
    expect(after.prepare('SELECT * FROM whatsapp_auth ORDER BY session_id, data_key').all()).toEqual(before);
    expect(after.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    after.close();
  });
});
