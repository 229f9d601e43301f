/** The contract on PostgreSQL, in clear and through SealedStore (see sqlite.test.ts for what changes and why). */
import pg from 'pg';
import { describe, it } from 'vitest';
import { until } from '../helpers/until.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { SealedStore } from '../../src/store/sealed.js';
import type { SessionStore } from '../../src/store/types.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { describeSessionStore, SEALING, type StoreHarness } from './session-store.js';

const harness = (sealed: boolean) => async (): Promise<StoreHarness> => {
  const { url, schema, drop } = await freshSchema();
  const open = async (): Promise<SessionStore> => {
    const store = await PostgresStore.open(url);
    return sealed ? new SealedStore(store, SEALING) : store;
  };
  let store = await open();
  const raw = new pg.Client({ connectionString: url });
  await raw.connect();
  return {
    store,
    async reopen() {
      await store.close();
      store = await open();
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
      const stored = store instanceof SealedStore ? await store.seal(sessionId, dataKey, value) : value;
      await raw.query(
        `INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ($1, $2, $3)
         ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value`,
        [sessionId, dataKey, stored],
      );
    },
    async sql(query, params = []) {
      let n = 0;
      return (
        await raw.query(
          query.replace(/\?/g, () => `$${++n}`),
          params,
        )
      ).rows as Array<Record<string, unknown>>;
    },
    async failEventWrites() {
      await raw.query(`CREATE OR REPLACE FUNCTION ${schema}.fail_events() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql`);
      await raw.query(
        `CREATE TRIGGER fail_events BEFORE INSERT ON wa_events FOR EACH ROW EXECUTE FUNCTION ${schema}.fail_events()`,
      );
    },
    async cleanup() {
      await raw.end();
      await store.close();
      await drop();
    },
  };
};

describe.skipIf(!pgUrl)('postgres', () => {
  describeSessionStore('postgres', harness(false));
  it('hints a message queued by another process to a watcher on this one (LISTEN/NOTIFY)', async () => {
    const { url, drop } = await freshSchema();
    const watcher = await PostgresStore.open(url);
    const writer = await PostgresStore.open(url);
    try {
      const seen: string[] = [];
      watcher.watchChanges((change) => seen.push(`${change.kind}:${change.session}`));
      await until(async () => {
        await writer.enqueueMessage('far', {
          id: `m${seen.length}-${Date.now()}`,
          to: '15550001111@s.whatsapp.net',
          text: 'hi',
        });
        return seen.includes('outbox:far') && seen.includes('events:far');
      }, 'the hints of a message queued through another pool');
    } finally {
      await watcher.close();
      await writer.close();
      await drop();
    }
  });
  describeSessionStore('postgres sealed', harness(true), { opaqueValues: true });
});
