import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SQLITE_SCHEMA_VERSION, SqliteStore } from '../../src/store/sqlite.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { tempDir } from '../helpers/temp.js';
import type { SessionStore } from '../../src/store/types.js';
import { distUrl, race } from '../helpers/processes.js';

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
    raw.exec(
      'DROP TABLE wa_meta; DROP TABLE wa_messages; DROP TABLE wa_events; DROP TABLE wa_outbox; DROP TABLE wa_webhooks',
    );
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
    // v3: the message tables exist and work on the upgraded file.
    expect(
      await upgraded.storeIncoming(
        'bot',
        [
          {
            id: 'm',
            chat: 'c',
            from: 'c',
            fromMe: false,
            name: null,
            sentAt: null,
            kind: 'text',
            text: 't',
            raw: '{}',
          },
        ],
        { replay: false },
      ),
    ).toBe(1);
    await upgraded.close();
  });
});

/** A v4 database (before webhooks): its outbox and events, and a lease to fence the first position write. */
async function fillV4(store: SessionStore): Promise<void> {
  await store.createSession('bot', null);
  await store.writeCreds('bot', '{"account":{}}', { paired: true, jid: '1:1@s.whatsapp.net', name: 'A' });
  await store.enqueueMessage('bot', { id: 'o1', to: '1@s.whatsapp.net', text: 'queued before the upgrade' });
}

async function checkV5(store: SessionStore): Promise<void> {
  expect(await store.getOutgoing('bot', 'o1')).toMatchObject({ status: 'queued', text: 'queued before the upgrade' });
  const events = await store.readEvents({ sessions: ['bot'] });
  expect(events.map((e) => e.type)).toEqual(['state', 'status']);
  // v5: no position yet, so everything kept is pending; the table takes a fenced write.
  expect(await store.webhookPosition('bot')).toBeUndefined();
  expect((await store.webhookStats({ allSessions: true })).get('bot')).toMatchObject({ pending: 2, tracked: false });
  await store.acquireLease('bot', { ownerId: 'o', host: 'h', pid: 1 }, 30_000, false);
  await store.recordWebhookDelivery('bot', events[0]!.cursor, { result: 'delivered' }, { fence: 'o' });
  expect((await store.webhookStats()).get('bot')).toMatchObject({ pending: 1, delivered: 1, tracked: true });
}

describe('v4 to v5 (webhook positions)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('SQLite: adds wa_webhooks to a v4 database in place, keeping every row', async () => {
    const path = join(dir.path, 'wa.db');
    const store = new SqliteStore(path);
    await fillV4(store);
    await store.close();
    const raw = new Database(path);
    raw.exec('DROP TABLE wa_webhooks');
    raw.pragma('user_version = 4');
    raw.close();

    const upgraded = new SqliteStore(path);
    expect(upgraded.db.pragma('user_version', { simple: true })).toBe(5);
    await checkV5(upgraded);
    await upgraded.close();
  });

  it.skipIf(!pgUrl)('PostgreSQL: adds wa_webhooks to a v4 schema in place, keeping every row', async () => {
    const schema = await freshSchema();
    const { PostgresStore, POSTGRES_SCHEMA_VERSION } = await import('../../src/store/postgres.js');
    try {
      const store = await PostgresStore.open(schema.url);
      await fillV4(store);
      await store.pool.query(`DROP TABLE wa_webhooks`);
      await store.pool.query(`UPDATE wa_meta SET value = '4' WHERE key = 'schema_version'`);
      await store.close();

      const upgraded = await PostgresStore.open(schema.url);
      const version = await upgraded.pool.query<{ value: string }>(
        `SELECT value FROM wa_meta WHERE key = 'schema_version'`,
      );
      expect(POSTGRES_SCHEMA_VERSION).toBe(5);
      expect(version.rows[0]!.value).toBe('5');
      await checkV5(upgraded);
      await upgraded.close();
    } finally {
      await schema.drop();
    }
  });
});

describe('concurrent first migration', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('lets 6 processes open one new SQLite file at the same instant, all succeeding', async () => {
    const path = join(dir.path, 'new.db');
    const results = await race(
      6,
      (i) => `
        const { SqliteStore } = await import(${JSON.stringify(distUrl('store/sqlite.js'))});
        const store = new SqliteStore(${JSON.stringify(path)});
        await store.createSession('s${i}', null);
        await store.close();
        process.stdout.write('opened\\n');
      `,
      dir.path,
    );
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'ready\nopened\n' });
    const store = new SqliteStore(path);
    expect((await store.listSessions()).map((s) => s.id)).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
    expect(store.db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    await store.close();
  });

  it.skipIf(!pgUrl)('lets 6 processes open one new PostgreSQL schema at the same instant, all succeeding', async () => {
    const schema = await freshSchema();
    try {
      const results = await race(
        6,
        (i) => `
          const { PostgresStore } = await import(${JSON.stringify(distUrl('store/postgres.js'))});
          const store = await PostgresStore.open(process.env.PG_URL);
          await store.createSession('s${i}', null);
          await store.close();
          process.stdout.write('opened\\n');
        `,
        dir.path,
        { PG_URL: schema.url },
      );
      for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'ready\nopened\n' });
      const { PostgresStore } = await import('../../src/store/postgres.js');
      const store = await PostgresStore.open(schema.url);
      expect((await store.listSessions()).map((s) => s.id)).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
      await store.close();
    } finally {
      await schema.drop();
    }
  });
});
