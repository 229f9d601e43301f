import {
  addTransactionCapability,
  BufferJSON,
  initAuthCreds,
  proto,
  useMultiFileAuthState,
} from '@whiskeysockets/baileys';
import type { SignalDataSet, SignalDataTypeMap, SignalKeyStore } from '@whiskeysockets/baileys';
import Database from 'better-sqlite3';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { useSqliteAuthState, type SqliteAuthState } from '../../src/index.js';
import { KEY_TYPES } from '../../src/store/codec.js';
import { ID_POOLS, pick, prng, valueFor, type Rand } from '../helpers/baileys-values.js';
import { tempDir } from '../helpers/temp.js';

type KeyType = keyof SignalDataTypeMap;
const silent = pino({ level: 'silent' });

describe('useSqliteAuthState', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let dbPath: string;
  const opened: SqliteAuthState[] = [];
  const open = async (id = 's1'): Promise<SqliteAuthState> => {
    const auth = await useSqliteAuthState(dbPath, id);
    opened.push(auth);
    return auth;
  };
  beforeEach(async () => {
    dir = await tempDir();
    dbPath = join(dir.path, 'wa.db');
  });
  afterEach(async () => {
    for (const auth of opened.splice(0)) await auth.close();
    await dir.remove();
  });

  it('covers all 10 key types of Baileys 7', () => {
    expect([...KEY_TYPES].sort()).toEqual(Object.keys(ID_POOLS).sort());
  });

  // The heart of the drop-in claim: the same operations give the same answers as Baileys' own file store.
  it.each([1, 2, 3, 4, 5])(
    'matches useMultiFileAuthState on a random get/set/delete sequence (seed %i)',
    async (seed) => {
      const rand = prng(seed);
      const ours = (await open()).state.keys;
      const folder = join(dir.path, 'files');
      const theirs = (await useMultiFileAuthState(folder)).state.keys;

      for (let step = 0; step < 250; step++) {
        const type = pick(rand, KEY_TYPES) as KeyType;
        const ids = ID_POOLS[type]!;
        if (rand() < 0.55) {
          const data: SignalDataSet = {};
          // Batches span several types, like Baileys' transaction commits do.
          for (const batchType of [type, ...(rand() < 0.4 ? [pick(rand, KEY_TYPES) as KeyType] : [])]) {
            const entries: Record<string, unknown> = {};
            const n = 1 + Math.floor(rand() * 3);
            for (let i = 0; i < n; i++) entries[pick(rand, ID_POOLS[batchType]!)] = nextValue(batchType, rand);
            (data as Record<string, unknown>)[batchType] = entries;
          }
          await Promise.all([ours.set(data), theirs.set(data)]);
        } else {
          const wanted = ids.filter(() => rand() < 0.6).concat('never-written');
          const [a, b] = await Promise.all([ours.get(type, wanted), theirs.get(type, wanted)]);
          expect(a, `seed ${seed} step ${step} get ${type}`).toEqual(b);
          // Same bytes for every value (the order in which the file store resolves ids is not meaningful).
          const bytesOf = (x: object) =>
            Object.entries(x)
              .map(([k, v]) => `${k}=${JSON.stringify(v, BufferJSON.replacer)}`)
              .sort();
          expect(bytesOf(a)).toEqual(bytesOf(b));
        }
      }

      // Finally, every stored row is byte-identical to the file Baileys wrote.
      const files = (await readdir(folder)).sort();
      const db = new Database(dbPath, { readonly: true });
      const rows = db
        .prepare("SELECT data_key, data_value FROM whatsapp_auth WHERE session_id = 's1' ORDER BY data_key")
        .all() as Array<{ data_key: string; data_value: string }>;
      db.close();
      expect(rows.map((r) => `${r.data_key}.json`).sort()).toEqual(files);
      for (const row of rows) expect(row.data_value).toBe(await readFile(join(folder, `${row.data_key}.json`), 'utf8'));
    },
  );

  it('saves creds byte-identical to creds.json and reloads them equal', async () => {
    const auth = await open();
    const folder = join(dir.path, 'files');
    const files = await useMultiFileAuthState(folder);
    Object.assign(files.state.creds, auth.state.creds);
    await Promise.all([auth.saveCreds(), files.saveCreds()]);
    const db = new Database(dbPath, { readonly: true });
    const row = db
      .prepare("SELECT data_value FROM whatsapp_auth WHERE session_id = 's1' AND data_key = 'creds'")
      .get() as { data_value: string };
    db.close();
    expect(row.data_value).toBe(await readFile(join(folder, 'creds.json'), 'utf8'));
    const again = await open();
    expect(again.state.creds).toEqual(auth.state.creds);
    expect(Buffer.isBuffer(again.state.creds.noiseKey.private)).toBe(true);
  });

  it('starts with fresh creds for a new session and registers it', async () => {
    const auth = await open('fresh');
    expect(auth.state.creds.registrationId).toBeGreaterThan(0);
    expect(auth.state.creds.account).toBeUndefined();
    const db = new Database(dbPath, { readonly: true });
    expect(db.prepare('SELECT id, state FROM wa_sessions').all()).toEqual([{ id: 'fresh', state: 'unpaired' }]);
    db.close();
  });

  it('revives app-state-sync-key values as protobuf messages', async () => {
    const { keys } = (await open()).state;
    const value = proto.Message.AppStateSyncKeyData.fromObject({
      keyData: Buffer.alloc(32, 7),
      fingerprint: { rawId: 5 },
      timestamp: 1700000000000,
    });
    await keys.set({ 'app-state-sync-key': { 'AAAAAB/+': value } });
    const got = (await keys.get('app-state-sync-key', ['AAAAAB/+']))['AAAAAB/+'];
    expect(got).toBeInstanceOf(proto.Message.AppStateSyncKeyData);
    expect(Buffer.from(got!.keyData!)).toEqual(Buffer.alloc(32, 7));
    expect(String(got!.timestamp)).toBe('1700000000000');
  });

  it('commits one keys.set() as one store write, and throws without applying anything on failure', async () => {
    const auth = await open();
    await auth.state.keys.set({ 'pre-key': { '1': { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) } } });
    const raw = new Database(dbPath);
    raw.exec(
      `CREATE TRIGGER boom BEFORE INSERT ON whatsapp_auth WHEN NEW.data_key = 'session-boom' BEGIN SELECT RAISE(ABORT, 'injected'); END`,
    );
    await expect(
      auth.state.keys.set({
        'pre-key': { '1': null, '2': { public: Buffer.alloc(32), private: Buffer.alloc(32) } },
        session: { boom: { _sessions: {}, version: 'v1' } as unknown as Uint8Array },
        'lid-mapping': { '15551234567': '98765432101234' },
      }),
    ).rejects.toThrow(/injected/);
    raw.close();
    const after = await auth.state.keys.get('pre-key', ['1', '2']);
    expect(after['1']).toBeTruthy();
    expect(after['2']).toBeNull();
    expect((await auth.state.keys.get('lid-mapping', ['15551234567']))['15551234567']).toBeNull();
  });

  it("works under Baileys' transaction wrapper: one commit per transaction, retried when it throws", async () => {
    const auth = await open();
    const spy = vi.spyOn(auth.state.keys, 'set');
    const keys = addTransactionCapability(auth.state.keys as SignalKeyStore, silent, {
      maxCommitRetries: 3,
      delayBetweenTriesMs: 1,
    });
    await keys.transaction(async () => {
      await keys.set({ session: { '1_1.0': { _sessions: {}, version: 'v1' } as unknown as Uint8Array } });
      await keys.set({ 'lid-mapping': { '1': '2', '2_reverse': '1' }, 'device-list': { '1': ['0', '3'] } });
    }, 'test');
    expect(spy).toHaveBeenCalledTimes(1);
    expect(Object.keys(spy.mock.calls[0]![0]).sort()).toEqual(['device-list', 'lid-mapping', 'session']);
    expect(await keys.get('device-list', ['1'])).toEqual({ '1': ['0', '3'] });

    // A failing commit is retried by Baileys; the store must throw (not swallow) for that to happen.
    spy.mockRejectedValueOnce(new Error('transient'));
    await keys.transaction(async () => {
      await keys.set({ 'identity-key': { 'x.0': Buffer.alloc(33, 5) } });
    }, 'retry');
    expect(spy).toHaveBeenCalledTimes(3);
    expect((await keys.get('identity-key', ['x.0']))['x.0']).toEqual(Buffer.alloc(33, 5));
  });

  it('names the session and key when a stored value is corrupt, and never replaces corrupt creds', async () => {
    const auth = await open();
    await auth.saveCreds();
    const raw = new Database(dbPath);
    raw.prepare("UPDATE whatsapp_auth SET data_value = '{\"broken' WHERE data_key = 'creds'").run();
    raw
      .prepare("INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ('s1', 'session-9_1.0', '{oops')")
      .run();
    raw.close();
    await expect(auth.state.keys.get('session', ['9_1.0'])).rejects.toMatchObject({
      code: 'E_CORRUPT',
      exitCode: 5,
      message: "session 's1': stored value 'session-9_1.0' is not valid JSON",
    });
    await expect(useSqliteAuthState(dbPath, 's1')).rejects.toMatchObject({
      code: 'E_CORRUPT',
      message: expect.stringContaining("'creds'") as string,
    });
    const db = new Database(dbPath, { readonly: true });
    expect(db.prepare("SELECT data_value FROM whatsapp_auth WHERE data_key = 'creds'").pluck().get()).toBe('{"broken');
    db.close();
  });

  it('refuses stored creds that are JSON but not a creds object (null, {}, [], "x", 0), leaving the row', async () => {
    const auth = await open();
    await auth.saveCreds();
    const noNoiseKey = JSON.parse(
      new Database(dbPath, { readonly: true })
        .prepare("SELECT data_value FROM whatsapp_auth WHERE data_key = 'creds'")
        .pluck()
        .get() as string,
    ) as Record<string, unknown>;
    delete noNoiseKey.noiseKey;
    for (const stored of ['null', '{}', '[]', '"x"', '0', 'true', JSON.stringify(noNoiseKey)]) {
      const raw = new Database(dbPath);
      raw.prepare("UPDATE whatsapp_auth SET data_value = ? WHERE data_key = 'creds'").run(stored);
      raw.close();
      await expect(useSqliteAuthState(dbPath, 's1'), stored).rejects.toMatchObject({
        code: 'E_CORRUPT',
        exitCode: 5,
        message: expect.stringContaining("session 's1': stored value 'creds'") as string,
      });
      const db = new Database(dbPath, { readonly: true });
      expect(db.prepare("SELECT data_value FROM whatsapp_auth WHERE data_key = 'creds'").pluck().get()).toBe(stored);
      db.close();
    }
  });

  it('lists stored ids per type as Baileys passed them (keys.listIds / keys.list), and keys.clear keeps creds', async () => {
    const auth = await open();
    await auth.saveCreds();
    const token = { token: Buffer.from('t'), timestamp: '1' };
    await auth.state.keys.set({
      'sender-key': { '120363@g.us::4915551234::0': Buffer.from('sk'), '1234-5678@g.us::49::2': Buffer.from('old') },
      'sender-key-memory': { '120363@g.us': { '4915551234:0@s.whatsapp.net': true } },
      'app-state-sync-key': { 'AAAA/bb+c=': { keyData: Buffer.from('k') } },
      tctoken: { __index: token, '4915551234@s.whatsapp.net': token },
      'pre-key': { '7': { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) } },
    });
    const keys = auth.state.keys as unknown as {
      listIds(type: KeyType): AsyncIterable<string>;
      list(type: KeyType): AsyncIterable<readonly [string, unknown]>;
      clear(): Promise<void>;
    };
    const ids = async (type: KeyType): Promise<string[]> => {
      const out: string[] = [];
      for await (const id of keys.listIds(type)) out.push(id);
      return out.sort();
    };
    expect(await ids('sender-key')).toEqual(['120363@g.us::4915551234::0', '1234-5678@g.us::49::2']);
    expect(await ids('sender-key-memory')).toEqual(['120363@g.us']);
    expect(await ids('app-state-sync-key')).toEqual(['AAAA/bb+c=']);
    expect(await ids('tctoken')).toEqual(['4915551234@s.whatsapp.net', '__index']);
    expect(await ids('pre-key')).toEqual(['7']);
    expect(await ids('session')).toEqual([]);
    // Every listed id reads back through get(), so a migration can copy what it lists.
    for (const type of ['sender-key', 'app-state-sync-key', 'tctoken'] as const) {
      const listed = await ids(type);
      const got = await auth.state.keys.get(type, listed);
      expect(
        Object.values(got).every((v) => v !== null && v !== undefined),
        type,
      ).toBe(true);
    }
    const listed: Array<readonly [string, unknown]> = [];
    for await (const entry of keys.list('app-state-sync-key')) listed.push(entry);
    expect(listed).toHaveLength(1);
    expect(listed[0]![0]).toBe('AAAA/bb+c=');
    expect(Buffer.from((listed[0]![1] as { keyData: Uint8Array }).keyData).toString()).toBe('k');
    const senderKeys: Array<readonly [string, unknown]> = [];
    for await (const entry of keys.list('sender-key')) senderKeys.push(entry);
    expect(new Map(senderKeys).get('120363@g.us::4915551234::0')).toEqual(Buffer.from('sk'));

    await keys.clear();
    expect(await ids('sender-key')).toEqual([]);
    expect(await ids('tctoken')).toEqual([]);
    expect(await auth.state.keys.get('pre-key', ['7'])).toEqual({ '7': null });
    const reopened = await useSqliteAuthState(dbPath, 's1');
    expect(reopened.state.creds.registrationId).toBe(auth.state.creds.registrationId);
    await reopened.close();
  });

  it('rejects an invalid session id', async () => {
    await expect(useSqliteAuthState(dbPath, '../x')).rejects.toMatchObject({ code: 'E_SESSION_ID', exitCode: 2 });
  });

  it('accepts an open better-sqlite3 Database and leaves it open', async () => {
    const db = new Database(join(dir.path, 'mine.db'));
    const auth = await useSqliteAuthState(db, 'mine');
    await auth.saveCreds();
    await auth.close();
    expect(db.open).toBe(true);
    expect(db.prepare("SELECT count(*) FROM whatsapp_auth WHERE session_id = 'mine'").pluck().get()).toBe(1);
    db.close();
  });

  it('keeps fresh creds equal to initAuthCreds shape', () => {
    expect(Object.keys(initAuthCreds()).length).toBeGreaterThan(10);
  });
});

function nextValue(type: KeyType, rand: Rand): unknown {
  const roll = rand();
  if (roll < 0.2) return null; // delete
  if (roll < 0.25 && type === 'lid-mapping') return ''; // falsy: the file store deletes it too
  return valueFor(type, rand);
}
