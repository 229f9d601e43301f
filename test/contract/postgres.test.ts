import pg from 'pg';
import { describe } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { describeSessionStore } from './session-store.js';

describe.skipIf(!pgUrl)('postgres', () => {
  describeSessionStore('postgres', async () => {
    const { url, schema, drop } = await freshSchema();
    let store = await PostgresStore.open(url);
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    return {
      store,
      async reopen() {
        await store.close();
        store = await PostgresStore.open(url);
        return store;
      },
      async failWritesOf(dataKey) {
        const fn = `${schema}.fail_${dataKey.replace(/\W/g, '_')}`;
        await raw.query(`CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger AS $$
          BEGIN IF NEW.data_key = '${dataKey}' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
        await raw.query(
          `CREATE TRIGGER fail_${dataKey.replace(/\W/g, '_')} BEFORE INSERT OR UPDATE ON whatsapp_auth FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
        );
      },
      async writeRaw(sessionId, dataKey, value) {
        await raw.query(
          `INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ($1, $2, $3)
           ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value`,
          [sessionId, dataKey, value],
        );
      },
      async cleanup() {
        await raw.end();
        await store.close();
        await drop();
      },
    };
  });
});
