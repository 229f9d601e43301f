import Database from 'better-sqlite3';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { useSqliteAuthState } from '../../src/index.js';
import {
  createSealer,
  ENCRYPTION_META_KEY,
  openSealer,
  parseEncryptionParams,
  SealedStore,
} from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDir } from '../helpers/temp.js';

const cost = { N: 2 ** 10, r: 8, p: 1 };
const SECRET = 'correct horse battery staple';
const WRONG = 'incorrect mule';
const unpaired = { paired: false, jid: null, name: null };
const creds = '{"noiseKey":{"private":{"type":"Buffer","data":"AAAA"}},"registrationId":42}';

describe('Sealer', () => {
  it('round-trips any text in the wa1:<keyId>:<base64> format, with a fresh IV each time', async () => {
    const { sealer, params } = await createSealer(SECRET, cost);
    expect(params).toMatchObject({ v: 1, kdf: 'scrypt', cipher: 'aes-256-gcm', ...cost, keyId: sealer.keyId });
    expect(Buffer.from(params.salt, 'base64')).toHaveLength(16);
    for (const text of [creds, '', '"ü ✓ 𝄞"', 'x'.repeat(100_000)]) {
      const sealed = sealer.seal(text, 's', 'creds');
      expect(sealed).toMatch(new RegExp(`^wa1:${sealer.keyId}:[A-Za-z0-9+/]+=*$`));
      expect(sealer.unseal(sealed, 's', 'creds')).toBe(text);
    }
    expect(sealer.seal(creds, 's', 'creds')).not.toBe(sealer.seal(creds, 's', 'creds'));
    expect(sealer.seal(creds, 's', 'creds')).not.toContain('noiseKey');
  });

  it('binds each value to its session and data key (a moved value fails)', async () => {
    const { sealer } = await createSealer(SECRET, cost);
    const sealed = sealer.seal('"v"', 'bot', 'pre-key-1');
    for (const [session, key] of [
      ['bot', 'pre-key-2'],
      ['other', 'pre-key-1'],
      ['bot', 'creds'],
    ] as const) {
      expect(() => sealer.unseal(sealed, session, key)).toThrow(
        expect.objectContaining({ code: 'E_UNSEAL', exitCode: 5, message: expect.stringContaining(`'${key}'`) }),
      );
    }
  });

  it('detects tampering, truncation, clear text and another key', async () => {
    const { sealer } = await createSealer(SECRET, cost);
    const { sealer: other } = await createSealer(SECRET, cost); // same secret, another salt: another key
    const sealed = sealer.seal(creds, 's', 'creds');
    const body = Buffer.from(sealed.split(':')[2]!, 'base64');
    for (const i of [0, 12, body.length - 1]) {
      const bad = Buffer.from(body);
      bad[i]! ^= 1;
      expect(() => sealer.unseal(`wa1:${sealer.keyId}:${bad.toString('base64')}`, 's', 'creds')).toThrow(
        /fails authentication/,
      );
    }
    expect(() => sealer.unseal(`wa1:${sealer.keyId}:AAAA`, 's', 'creds')).toThrow(/truncated/);
    expect(() => sealer.unseal(creds, 's', 'creds')).toThrow(/is not sealed/);
    expect(() => other.unseal(sealed, 's', 'creds')).toThrow(new RegExp(`sealed with key ${sealer.keyId}`));
  });

  it('tells a wrong secret by its key id, without ever showing a secret or the key', async () => {
    const { sealer, params } = await createSealer(SECRET, cost);
    expect((await openSealer(SECRET, params, 'db')).keyId).toBe(sealer.keyId);
    const error = (await openSealer(WRONG, params, 'db').then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { code: string };
    expect(error).toMatchObject({ code: 'E_WRONG_SECRET', exitCode: 5 });
    expect(error.message).toMatch(/^wrong WA_SECRET/);
    expect(JSON.stringify([error.message, (error as { hint?: string }).hint])).not.toMatch(/horse|mule/);
    expect(inspect(sealer, { showHidden: true })).not.toMatch(/key: <Buffer|Buffer/);
    expect(JSON.stringify(sealer)).toBe(JSON.stringify({ keyId: sealer.keyId }));
  });

  it('refuses damaged or unknown parameters', () => {
    expect(parseEncryptionParams(undefined, 'db')).toBeUndefined();
    expect(() => parseEncryptionParams('{"v":2}', 'db')).toThrow(
      expect.objectContaining({ code: 'E_ENCRYPTION_META' }),
    );
    expect(() =>
      parseEncryptionParams('{"v":1,"kdf":"scrypt","cipher":"aes-256-gcm","salt":"x","keyId":"y","N":0}', 'db'),
    ).toThrow(/damaged/);
  });
});

describe('SealedStore over SQLite', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let path: string;
  const open = (secret?: string, writable = true): SealedStore =>
    new SealedStore(new SqliteStore(path), { secret, writable, cost });
  const rawRows = (): Array<[string, string, string]> => {
    const db = new Database(path, { readonly: true });
    const rows = db
      .prepare('SELECT session_id, data_key, data_value FROM whatsapp_auth ORDER BY 1, 2')
      .raw()
      .all() as Array<[string, string, string]>;
    db.close();
    return rows;
  };
  const rawMeta = (): string | undefined => {
    const db = new Database(path, { readonly: true });
    const value = db.prepare(`SELECT value FROM wa_meta WHERE key = 'encryption'`).pluck().get() as string | undefined;
    db.close();
    return value;
  };
  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir.path, 'wa.db');
  });
  afterEach(() => dir.remove());

  async function sealedDatabase(): Promise<void> {
    const store = open(SECRET);
    await store.writeCreds('bot', creds, unpaired);
    await store.writeValues('bot', [['pre-key-1', '{"a":1}']]);
    await store.close();
  }

  it('initializes encryption on a fresh database and stores nothing readable', async () => {
    await sealedDatabase();
    const params = parseEncryptionParams(rawMeta(), path);
    expect(params).toMatchObject({ v: 1, kdf: 'scrypt', ...cost });
    const rows = rawRows();
    expect(rows.map(([s, k]) => `${s}/${k}`)).toEqual(['bot/creds', 'bot/pre-key-1']);
    for (const [, , value] of rows) expect(value).toMatch(new RegExp(`^wa1:${params!.keyId}:`));
    expect(JSON.stringify(rows)).not.toMatch(/noiseKey|registrationId|"a"/);
    const store = open(SECRET);
    expect(await store.readCreds('bot')).toBe(creds);
    expect(await store.readAll('bot')).toEqual([
      ['creds', creds],
      ['pre-key-1', '{"a":1}'],
    ]);
    await store.close();
  });

  it('gives two databases different salts, so one secret makes different keys', async () => {
    await sealedDatabase();
    const first = parseEncryptionParams(rawMeta(), path)!;
    await dir.remove();
    await sealedDatabase();
    const second = parseEncryptionParams(rawMeta(), path)!;
    expect(second.salt).not.toBe(first.salt);
    expect(second.keyId).not.toBe(first.keyId);
  });

  it('without the secret: lists sessions, refuses values, and does not call sealed creds corrupt', async () => {
    await sealedDatabase();
    const before = rawRows();
    const store = open(undefined);
    expect((await store.listSessions()).map((s) => s.id)).toEqual(['bot']);
    expect(await store.getSession('bot')).toMatchObject({ id: 'bot', corruptKey: null });
    for (const call of [
      () => store.readCreds('bot'),
      () => store.readAll('bot'),
      () => store.readValues('bot', ['pre-key-1']),
      () => store.writeValues('bot', [['pre-key-2', '"x"']]),
      () => store.writeCreds('bot', '{}', unpaired),
      () => store.replaceAll('bot', [['creds', '{}']], unpaired),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'E_SECRET_REQUIRED', exitCode: 5 });
    }
    await store.close();
    expect(rawRows()).toEqual(before);
  });

  it('with a wrong secret: refuses every value call and writes nothing', async () => {
    await sealedDatabase();
    const before = rawRows();
    const meta = rawMeta();
    const store = open(WRONG);
    await expect(store.writeValues('bot', [['pre-key-1', null]])).rejects.toMatchObject({
      code: 'E_WRONG_SECRET',
      exitCode: 5,
    });
    await expect(store.readCreds('bot')).rejects.toMatchObject({ code: 'E_WRONG_SECRET' });
    expect(await store.getSession('bot')).toMatchObject({ corruptKey: null });
    await store.close();
    expect(rawRows()).toEqual(before);
    expect(rawMeta()).toBe(meta);
  });

  it('refuses a secret on a database that holds values in clear, and does not mix them', async () => {
    const plain = open(undefined);
    await plain.writeCreds('bot', creds, unpaired);
    await plain.close();
    const store = open(SECRET);
    await expect(store.writeValues('bot', [['pre-key-1', '"x"']])).rejects.toMatchObject({
      code: 'E_NOT_SEALED',
      exitCode: 5,
      hint: expect.stringContaining('wa rekey'),
    });
    // Plain creds are still checked as JSON by the backend.
    expect(await store.getSession('bot')).toMatchObject({ corruptKey: null });
    await store.close();
    expect(rawRows()).toEqual([['bot', 'creds', creds]]);
    expect(rawMeta()).toBeUndefined();
  });

  it('does not initialize encryption from a read-only open', async () => {
    new SqliteStore(path).close();
    const store = open(SECRET, false);
    expect(await store.readAll('bot')).toEqual([]);
    await store.close();
    expect(rawMeta()).toBeUndefined();
  });

  it('names the session and key of a value swapped between rows, and flags unreadable creds', async () => {
    await sealedDatabase();
    const db = new Database(path);
    const pre = db.prepare(`SELECT data_value FROM whatsapp_auth WHERE data_key = 'pre-key-1'`).pluck().get() as string;
    db.prepare(`INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ('bot', 'pre-key-2', ?)`).run(pre);
    db.prepare(`UPDATE whatsapp_auth SET data_value = ? WHERE data_key = 'creds'`).run(pre);
    db.close();
    const store = open(SECRET);
    await expect(store.readValues('bot', ['pre-key-2'])).rejects.toMatchObject({
      code: 'E_UNSEAL',
      exitCode: 5,
      message: expect.stringMatching(/session 'bot': stored value 'pre-key-2' fails authentication/),
    });
    expect(await store.readValues('bot', ['pre-key-1'])).toEqual(new Map([['pre-key-1', '{"a":1}']]));
    expect(await store.getSession('bot')).toMatchObject({ corruptKey: 'creds' });
    await store.close();
  });

  it('keeps the meta key out of reach of value rewrites', async () => {
    const store = open(SECRET);
    await expect(store.rewriteAll((v) => v, { [ENCRYPTION_META_KEY]: null })).rejects.toThrow(/encryption meta/);
    await store.close();
  });
});

describe('useSqliteAuthState with a secret', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('seals with { secret }, refuses a missing or wrong one, and keeps the two-argument call', async () => {
    const path = join(dir.path, 'wa.db');
    const auth = await useSqliteAuthState(path, 'lib', { secret: SECRET });
    await auth.state.keys.set({ 'pre-key': { '1': { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) } } });
    await auth.saveCreds();
    await auth.close();
    const reopened = await useSqliteAuthState(path, 'lib', { secret: SECRET });
    expect((await reopened.state.keys.get('pre-key', ['1']))['1']?.public).toEqual(Buffer.alloc(32, 1));
    expect(reopened.state.creds.registrationId).toBe(auth.state.creds.registrationId);
    await reopened.close();
    await expect(useSqliteAuthState(path, 'lib')).rejects.toMatchObject({ code: 'E_SECRET_REQUIRED' });
    await expect(useSqliteAuthState(path, 'lib', { secret: WRONG })).rejects.toMatchObject({
      code: 'E_WRONG_SECRET',
    });
    const plain = await useSqliteAuthState(join(dir.path, 'plain.db'), 'lib');
    await plain.saveCreds();
    await plain.close();
  });
});
