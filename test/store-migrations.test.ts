import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION, SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from './helpers/temp.js';

describe('SQLite schema migrations', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('upgrades a v1 database to the current schema in place, keeping every row', async () => {
    const path = join(dir.path, 'wa.db');
    const store = new SqliteStore(path);
    await store.writeCreds('bot', '{"account":{}}', { paired: true, jid: '1:1@s.whatsapp.net', name: 'A' });
    await store.writeValues('bot', [['pre-key-1', '{}']]);
    await store.close();
    // Turn it back into what wa's first release wrote.
    const raw = new Database(path);
    raw.exec('DROP TABLE wa_meta');
    raw.pragma('user_version = 1');
    raw.close();

    const upgraded = new SqliteStore(path);
    expect(upgraded.db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    expect(await upgraded.readAll('bot')).toEqual([
      ['creds', '{"account":{}}'],
      ['pre-key-1', '{}'],
    ]);
    expect(await upgraded.getSession('bot')).toMatchObject({ state: 'paired', jid: '1:1@s.whatsapp.net' });
    await upgraded.setMeta('k', 'v');
    await upgraded.close();
  });
});
