/**
 * The whole contract again, through SealedStore over SQLite: encryption at rest must be invisible to
 * every caller of the interface. writeRaw seals what it writes (as a wa process with the secret would),
 * so the corruption test still means "creds that are not JSON"; the adoption test is adapted, see
 * ContractOptions.opaqueValues.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SealedStore } from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDir } from '../helpers/temp.js';
import { describeSessionStore } from './session-store.js';

// A cheap scrypt: the contract opens dozens of databases, and the cost is stored with each one anyway.
const cost = { N: 2 ** 10, r: 8, p: 1 };
const secret = 'contract secret';

describeSessionStore(
  'sqlite sealed',
  async () => {
    const dir = await tempDir();
    const path = join(dir.path, 'wa.db');
    const open = (): SealedStore => new SealedStore(new SqliteStore(path), { secret, cost });
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
        raw
          .prepare('INSERT OR REPLACE INTO whatsapp_auth (session_id, data_key, data_value) VALUES (?, ?, ?)')
          .run(sessionId, dataKey, await store.seal(sessionId, dataKey, value));
      },
      async cleanup() {
        raw.close();
        await store.close();
        await dir.remove();
      },
    };
  },
  { opaqueValues: true },
);
