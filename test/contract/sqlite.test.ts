/**
 * The contract on SQLite, in clear and through SealedStore: encryption at rest must be invisible to every
 * caller of the interface. The sealed harness's writeRaw seals what it writes (as a wa process with the
 * secret would), so the corruption test still means "creds that are not JSON"; the adoption test is
 * adapted, see ContractOptions.opaqueValues.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SealedStore } from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { SessionStore } from '../../src/store/types.js';
import { tempDir } from '../helpers/temp.js';
import { describeSessionStore, SEALING, type StoreHarness } from './session-store.js';

const harness = (sealed: boolean) => async (): Promise<StoreHarness> => {
  const dir = await tempDir();
  const path = join(dir.path, 'wa.db');
  const open = (): SessionStore => (sealed ? new SealedStore(new SqliteStore(path), SEALING) : new SqliteStore(path));
  let store = open();
  const raw = new Database(path);
  return {
    store,
    async reopen() {
      await store.close();
      store = open();
      return store;
    },
    async failWritesOf(dataKey) {
      const guard = `CREATE TRIGGER IF NOT EXISTS fail_${dataKey.replace(/\W/g, '_')}_%s BEFORE %s ON whatsapp_auth
        WHEN NEW.data_key = '${dataKey}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`;
      raw.exec(guard.replace('%s', 'ins').replace('%s', 'INSERT'));
      raw.exec(guard.replace('%s', 'upd').replace('%s', 'UPDATE'));
      await Promise.resolve();
    },
    async writeRaw(sessionId, dataKey, value) {
      const stored = store instanceof SealedStore ? await store.seal(sessionId, dataKey, value) : value;
      raw
        .prepare('INSERT OR REPLACE INTO whatsapp_auth (session_id, data_key, data_value) VALUES (?, ?, ?)')
        .run(sessionId, dataKey, stored);
    },
    async sql(query, params = []) {
      await Promise.resolve();
      const statement = raw.prepare(query);
      if (statement.reader) return statement.all(...params) as Array<Record<string, unknown>>;
      statement.run(...params);
      return [];
    },
    async failEventWrites() {
      raw.exec(
        `CREATE TRIGGER fail_events BEFORE INSERT ON wa_events BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
      );
      await Promise.resolve();
    },
    async cleanup() {
      raw.close();
      await store.close();
      await dir.remove();
    },
  };
};

describeSessionStore('sqlite', harness(false));
describeSessionStore('sqlite sealed', harness(true), { opaqueValues: true });
