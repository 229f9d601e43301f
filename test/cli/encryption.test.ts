import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBaileysFolder } from '../helpers/auth-folder.js';
import { runWa, type WaResult } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';

const exec = promisify(execFile);
const SECRET = 'first secret, never printed';
const NEW_SECRET = 'second secret, never printed';

interface Snapshot {
  rows: Array<[string, string, string]>;
  meta: Array<[string, string]>;
}

describe('encryption at rest (WA_SECRET, wa rekey)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let db: string;
  let folder: string;
  let exported = 0;
  beforeEach(async () => {
    dir = await tempDir();
    db = join(dir.path, 'wa.db');
    folder = join(dir.path, 'baileys');
    await makeBaileysFolder(folder);
  });
  afterEach(() => dir.remove());

  const wa = async (args: string[], secrets: { secret?: string; newSecret?: string } = {}): Promise<WaResult> => {
    const result = await runWa(args, {
      env: { WA_DB: db, WA_SECRET: secrets.secret, WA_NEW_SECRET: secrets.newSecret },
    });
    // Whatever happens, no secret reaches the terminal.
    expect(result.stdout + result.stderr).not.toMatch(/never printed/);
    return result;
  };
  const withDb = <T>(fn: (d: Database.Database) => T): T => {
    const d = new Database(db);
    try {
      return fn(d);
    } finally {
      d.close();
    }
  };
  const snapshot = (): Snapshot =>
    withDb((d) => ({
      rows: d
        .prepare('SELECT session_id, data_key, data_value FROM whatsapp_auth ORDER BY 1, 2')
        .raw()
        .all() as Snapshot['rows'],
      meta: d.prepare('SELECT key, value FROM wa_meta ORDER BY 1').raw().all() as Snapshot['meta'],
    }));
  const keyIdOf = (s: Snapshot): string | undefined => {
    const meta = s.meta.find(([key]) => key === 'encryption');
    return meta && (JSON.parse(meta[1]) as { keyId: string }).keyId;
  };
  /** Exports bot and checks the folder is the imported one, byte for byte. */
  const expectExportClean = async (secret?: string): Promise<void> => {
    const out = join(dir.path, `exported-${exported++}`);
    const res = await wa(['export', 'bot', out], { secret });
    expect(res.code, res.stderr).toBe(0);
    await exec('diff', ['-r', folder, out]); // throws on any difference
  };
  const importSealed = async (): Promise<void> => {
    const res = await wa(['import', 'bot', folder], { secret: SECRET });
    expect(res.code, res.stderr).toBe(0);
  };

  it('imports sealed, exports byte-identical (diff -r clean), and stores nothing readable', async () => {
    await importSealed();
    await expectExportClean(SECRET);
    const s = snapshot();
    expect(s.rows).toHaveLength((await readdir(folder)).length);
    const keyId = keyIdOf(s)!;
    expect(keyId).toMatch(/^[0-9a-f]{16}$/);
    for (const [, , value] of s.rows) expect(value).toMatch(new RegExp(`^wa1:${keyId}:[A-Za-z0-9+/]+=*$`));
    const dump = JSON.stringify(s.rows);
    for (const plain of ['noiseKey', 'signedIdentityKey', 'registrationId', '"Buffer"', 'Ada Lovelace']) {
      expect(dump).not.toContain(plain);
    }
    expect(await readFile(db)).not.toContain(Buffer.from('noiseKey'));
  });

  it('lists and checks sessions without the secret (status), but refuses values without it: exit 5, nothing written', async () => {
    await importSealed();
    const before = snapshot();
    const list = await wa(['status', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject({ sessions: [{ id: 'bot', state: 'paired' }] });
    const one = await wa(['status', 'bot', '--json']);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).not.toHaveProperty('error');
    expect(await wa(['status', 'bot'], { secret: SECRET })).toMatchObject({ code: 0 });

    const exportRes = await wa(['export', 'bot', join(dir.path, 'out')]);
    expect(exportRes.code).toBe(5);
    expect(exportRes.stderr).toMatch(/^Error: the database .* is encrypted and WA_SECRET is not set$/m);
    expect(exportRes.stderr).toMatch(/^Try: set WA_SECRET/m);
    expect((await wa(['import', 'bot', folder, '--force'])).code).toBe(5);
    expect((await wa(['import', 'other', folder])).code).toBe(5);
    expect(snapshot()).toEqual(before);
  });

  it('refuses a wrong WA_SECRET with exit 5 before writing anything', async () => {
    await importSealed();
    const before = snapshot();
    const res = await wa(['export', 'bot', join(dir.path, 'out')], { secret: 'wrong' });
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/^Error: wrong WA_SECRET: /m);
    const imported = await wa(['import', 'bot', folder, '--force', '--json'], { secret: 'wrong' });
    expect(imported).toMatchObject({ code: 5, stdout: '' });
    expect((await wa(['import', 'new', folder], { secret: 'wrong' })).code).toBe(5);
    expect((await wa(['connect', 'bot', '--timeout', '1'], { secret: 'wrong' })).code).toBe(5);
    expect(snapshot()).toEqual(before);
  });

  it('refuses WA_SECRET on a database holding values in clear (exit 5, pointing at wa rekey)', async () => {
    expect((await wa(['import', 'bot', folder])).code).toBe(0);
    const before = snapshot();
    expect(keyIdOf(before)).toBeUndefined();
    const res = await wa(['export', 'bot', join(dir.path, 'out')], { secret: SECRET });
    expect(res.code).toBe(5);
    expect(res.stderr).toMatch(/holds values stored in clear/);
    expect(res.stderr).toMatch(/^Try: .*wa rekey/m);
    expect((await wa(['import', 'two', folder], { secret: SECRET })).code).toBe(5);
    expect(snapshot()).toEqual(before);
  });

  it('rekey: seals a clear database, rotates the key with a new salt, and decrypts, round-tripping each time', async () => {
    expect((await wa(['import', 'bot', folder])).code).toBe(0);
    expect((await wa(['import', 'two', folder])).code).toBe(0);
    const clear = snapshot();
    const values = clear.rows.length;

    const missing = await wa(['rekey']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/WA_NEW_SECRET is not set/);

    const sealed = await wa(['rekey', '--json'], { newSecret: SECRET });
    expect(sealed.code, sealed.stderr).toBe(0);
    const first = keyIdOf(snapshot())!;
    expect(JSON.parse(sealed.stdout)).toEqual({ from: null, to: first, sessions: 2, values, compacted: true });
    expect(JSON.stringify(snapshot().rows)).not.toContain('noiseKey');
    // No clear text left behind in free pages or the WAL either (only the registry stays in clear).
    for (const file of [db, `${db}-wal`]) {
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      for (const plain of ['noiseKey', 'registrationId', '"Buffer"', 'valueMac']) {
        expect(bytes.includes(Buffer.from(plain)), `${plain} in ${file}`).toBe(false);
      }
    }
    await expectExportClean(SECRET);

    expect((await wa(['rekey'], { newSecret: NEW_SECRET })).code).toBe(5); // WA_SECRET needed now
    const rotated = await wa(['rekey'], { secret: SECRET, newSecret: NEW_SECRET });
    expect(rotated.code, rotated.stderr).toBe(0);
    const second = keyIdOf(snapshot())!;
    expect(second).not.toBe(first);
    expect(rotated.stdout).toBe(
      `Re-sealed ${values} values of 2 sessions with key ${second} (was ${first}). Use WA_NEW_SECRET as WA_SECRET from now on.\n`,
    );
    expect((await wa(['export', 'bot', join(dir.path, 'stale')], { secret: SECRET })).stderr).toMatch(
      /wrong WA_SECRET/,
    );
    await expectExportClean(NEW_SECRET);

    // The same secret again still means a new salt, hence a new key.
    expect((await wa(['rekey'], { secret: NEW_SECRET, newSecret: NEW_SECRET })).code).toBe(0);
    expect(keyIdOf(snapshot())).not.toBe(second);

    const decrypted = await wa(['rekey', '--decrypt', '--json'], { secret: NEW_SECRET });
    expect(decrypted.code, decrypted.stderr).toBe(0);
    expect(JSON.parse(decrypted.stdout)).toMatchObject({ to: null, sessions: 2, values });
    expect(snapshot().rows).toEqual(clear.rows); // the very bytes that were imported
    expect(keyIdOf(snapshot())).toBeUndefined();
    await expectExportClean();
    expect((await wa(['rekey', '--decrypt'])).stdout).toMatch(/is not encrypted; nothing to do/);
  });

  it('rekey refuses while a session has a live lease (exit 6), changing nothing', async () => {
    await importSealed();
    withDb((d) =>
      d
        .prepare('INSERT INTO wa_leases (session_id, owner_id, host, pid, expires_at) VALUES (?, ?, ?, ?, ?)')
        .run('bot', 'serve-elsewhere', 'other-host', 4242, Date.now() + 60_000),
    );
    const before = snapshot();
    const res = await wa(['rekey'], { secret: SECRET, newSecret: NEW_SECRET });
    expect(res.code).toBe(6);
    expect(res.stderr).toMatch(
      /cannot rekey while sessions are in use.*'bot' by serve-elsewhere \(host other-host, pid 4242\)/,
    );
    expect(snapshot()).toEqual(before);
  });

  it('rekey is all or nothing: a failure on the last row leaves every value and the key as they were', async () => {
    await importSealed();
    const last = withDb(
      (d) => d.prepare('SELECT data_key FROM whatsapp_auth ORDER BY rowid DESC LIMIT 1').pluck().get() as string,
    );
    withDb((d) =>
      d.exec(`CREATE TRIGGER fail_last BEFORE UPDATE ON whatsapp_auth WHEN NEW.data_key = '${last}'
              BEGIN SELECT RAISE(ABORT, 'injected failure'); END`),
    );
    const before = snapshot();
    for (const secrets of [{ secret: SECRET, newSecret: NEW_SECRET }, { secret: SECRET }]) {
      const res = await wa(secrets.newSecret ? ['rekey'] : ['rekey', '--decrypt'], secrets);
      expect(res.code).toBe(5);
      expect(res.stderr).toMatch(/injected failure/);
      expect(snapshot()).toEqual(before);
    }
    withDb((d) => d.exec('DROP TRIGGER fail_last'));
    await expectExportClean(SECRET);
  });
});
