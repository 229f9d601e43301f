import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDir } from '../helpers/temp.js';
import { describeSessionStore } from './session-store.js';

describeSessionStore('sqlite', async () => {
  const dir = await tempDir();
  const path = join(dir.path, 'wa.db');
  let store = new SqliteStore(path);
  const raw = new Database(path);
  return {
    store,
    async reopen() {
      await store.close();
      store = new SqliteStore(path);
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
      raw
        .prepare('INSERT OR REPLACE INTO whatsapp_auth (session_id, data_key, data_value) VALUES (?, ?, ?)')
        .run(sessionId, dataKey, value);
      await Promise.resolve();
    },
    async cleanup() {
      raw.close();
      await store.close();
      await dir.remove();
    },
  };
});
