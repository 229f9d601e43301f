import { useMultiFileAuthState } from '@whiskeysockets/baileys';
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBaileysFolder } from '../helpers/auth-folder.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);

describe('wa import / export', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  let folder: string;
  beforeEach(async () => {
    dir = await tempDir();
    env = { WA_DB: join(dir.path, 'wa.db') };
    folder = join(dir.path, 'baileys');
    await makeBaileysFolder(folder);
  });
  afterEach(() => dir.remove());

  const rowCount = (): number => {
    if (!existsSync(env.WA_DB!)) return 0;
    const db = new Database(env.WA_DB!, { readonly: true });
    const n = db.prepare('SELECT count(*) FROM whatsapp_auth').pluck().get() as number;
    db.close();
    return n;
  };

  it('round-trips every key type byte for byte (diff -r clean), and plain Baileys loads the export', async () => {
    const imported = await runWa(['import', 'bot', folder, '--json'], { env });
    expect(imported.code).toBe(0);
    const report = JSON.parse(imported.stdout) as { state: string; jid: string; counts: Record<string, number> };
    expect(report).toMatchObject({ state: 'paired', jid: '15551234567:4@s.whatsapp.net' });
    const files = await readdir(folder);
    expect(Object.keys(report.counts).sort()).toEqual([
      'app-state-sync-key',
      'app-state-sync-version',
      'creds',
      'device-list',
      'identity-key',
      'lid-mapping',
      'pre-key',
      'sender-key',
      'sender-key-memory',
      'session',
      'tctoken',
    ]);
    expect(Object.values(report.counts).reduce((a, b) => a + b, 0)).toBe(files.length);

    const human = await runWa(['status', 'bot'], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^phone:\s+15551234567$/m);

    const out = join(dir.path, 'exported');
    const exported = await runWa(['export', 'bot', out], { env });
    expect(exported).toMatchObject({ code: 0, stdout: `Exported 'bot' to ${out}: ${files.length} files.\n` });
    await exec('diff', ['-r', folder, out]); // throws on any difference
    expect((await stat(out)).mode & 0o777).toBe(0o700);
    expect((await stat(join(out, 'creds.json'))).mode & 0o777).toBe(0o600);

    const { state } = await useMultiFileAuthState(out);
    expect(state.creds.me?.id).toBe('15551234567:4@s.whatsapp.net');
    expect(Object.keys(await state.keys.get('pre-key', ['1', '2', '3']))).toHaveLength(3);
  });

  it('prints per-type counts for humans', async () => {
    const res = await runWa(['import', 'bot', folder], { env });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /^Imported 'bot' \(paired\): 1 creds, 6 pre-key, 4 session, 2 sender-key, .*, 3 identity-key\.\n$/,
    );
  });

  it('refuses a truncated creds.json, writing nothing', async () => {
    const creds = await readFile(join(folder, 'creds.json'), 'utf8');
    await writeFile(join(folder, 'creds.json'), creds.slice(0, creds.length / 2));
    const res = await runWa(['import', 'bot', folder], { env });
    expect(res).toMatchObject({ code: 2, stdout: '' });
    expect(res.stderr).toMatch(/^Error: creds.json is not valid JSON \(truncated or corrupt\?\)/);
    expect(JSON.parse((await runWa(['status', '--json'], { env })).stdout)).toMatchObject({ sessions: [] });
  });

  it('refuses creds that are JSON but not Baileys credentials', async () => {
    await writeFile(join(folder, 'creds.json'), '{"hello":"world"}');
    const res = await runWa(['import', 'bot', folder], { env });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(
      'creds.json is not Baileys credentials (missing or invalid: noiseKey, signedIdentityKey',
    );
  });

  it('refuses a folder without creds.json, a corrupt key file, an unknown file, or a missing folder', async () => {
    const bare = join(dir.path, 'bare');
    await mkdir(bare);
    await writeFile(join(bare, 'pre-key-1.json'), '{}');
    expect((await runWa(['import', 'bot', bare], { env })).stderr).toContain('has no creds.json');

    await writeFile(join(folder, 'session-1_1.0.json'), '{"_sessions":');
    let res = await runWa(['import', 'bot', folder], { env });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('session-1_1.0.json is not valid JSON');

    await writeFile(join(folder, 'session-1_1.0.json'), '{}');
    await writeFile(join(folder, 'notes.json'), '{}');
    res = await runWa(['import', 'bot', folder], { env });
    expect(res.stderr).toContain('notes.json is not a Baileys auth file');

    res = await runWa(['import', 'bot', join(dir.path, 'nowhere')], { env });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('cannot read the folder');
    expect(rowCount()).toBe(0);
  });

  it('will not overwrite a session that has credentials unless --force, and --force replaces every key', async () => {
    expect((await runWa(['import', 'bot', folder], { env })).code).toBe(0);
    const before = rowCount();
    const again = await runWa(['import', 'bot', folder], { env });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("session 'bot' already has credentials");
    expect(rowCount()).toBe(before);

    const smaller = join(dir.path, 'smaller');
    await mkdir(smaller);
    await writeFile(join(smaller, 'creds.json'), await readFile(join(folder, 'creds.json')));
    expect((await runWa(['import', 'bot', smaller, '--force'], { env })).code).toBe(0);
    expect(rowCount()).toBe(1);
  });

  it('imports into a registered session without creds, and skips non-JSON entries with a warning', async () => {
    await runWa(['add', 'bot', '--label', 'kept'], { env });
    await writeFile(join(folder, 'README.txt'), 'not auth');
    const res = await runWa(['import', 'bot', folder], { env });
    expect(res.code).toBe(0);
    expect(res.stderr).toContain('Warning: skipped README.txt');
    expect(JSON.parse((await runWa(['status', 'bot', '--json'], { env })).stdout)).toMatchObject({
      label: 'kept',
      state: 'paired',
    });
  });

  it('exports only to a new or empty folder, and only a session with credentials', async () => {
    await runWa(['import', 'bot', folder], { env });
    const busy = join(dir.path, 'busy');
    await mkdir(busy);
    await writeFile(join(busy, 'x'), '');
    const res = await runWa(['export', 'bot', busy], { env });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('is not empty');

    const empty = join(dir.path, 'empty');
    await mkdir(empty);
    expect((await runWa(['export', 'bot', empty], { env })).code).toBe(0);
    expect((await readdir(empty)).length).toBe((await readdir(folder)).length);

    await runWa(['add', 'blank'], { env });
    const none = await runWa(['export', 'blank', join(dir.path, 'none')], { env });
    expect(none.code).toBe(3);
    expect(none.stderr).toContain("session 'blank' has no credentials to export");
  });

  it('refuses to export a stored key that is not a plain file name of a key type, writing nothing anywhere', async () => {
    await runWa(['import', 'bot', folder], { env });
    const work = join(dir.path, 'work');
    await mkdir(work);
    const db = new Database(env.WA_DB!);
    const insert = db.prepare(`INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ('bot', ?, '{}')`);
    for (const key of ['pre-key-1/../../../victim/pwned', 'session-a\\..\\b', 'unknown-type-1', 'pre-key-x\u0000y']) {
      insert.run(key);
      const res = await runWa(['export', 'bot', './out/exp', '--json'], { env, cwd: work });
      expect(res.code, key).toBe(5);
      expect(res.stderr).toContain('not a plain file name of a Baileys key type');
      expect(existsSync(join(work, 'out')), key).toBe(false);
      expect(existsSync(join(dir.path, 'victim')), key).toBe(false);
      expect(await readdir(work)).toEqual([]);
      db.prepare(`DELETE FROM whatsapp_auth WHERE data_key = ?`).run(key);
    }
    db.close();
    // With the foreign rows gone the same export works (nothing was left half-written in its way).
    expect((await runWa(['export', 'bot', './out/exp'], { env, cwd: work })).code).toBe(0);
    expect((await readdir(join(work, 'out', 'exp'))).length).toBe((await readdir(folder)).length);
  });

  it('does not adopt or list a session id from whatsapp_auth that is not a valid session id', async () => {
    await runWa(['import', 'bot', folder], { env });
    const db = new Database(env.WA_DB!);
    const creds = db.prepare(`SELECT data_value FROM whatsapp_auth WHERE session_id = 'bot' AND data_key = 'creds'`);
    const value = creds.pluck().get() as string;
    db.prepare(`INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ('../evil', 'creds', ?)`).run(
      value,
    );
    db.close();
    const res = await runWa(['status', '--json'], { env });
    expect(res.code).toBe(0);
    expect((JSON.parse(res.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual(['bot']);
    const check = new Database(env.WA_DB!, { readonly: true });
    expect(check.prepare(`SELECT count(*) FROM wa_sessions WHERE id = '../evil'`).pluck().get()).toBe(0);
    check.close();
  });
});
