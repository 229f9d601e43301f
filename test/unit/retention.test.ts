import Database from 'better-sqlite3';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startRetention } from '../../src/daemon/retention.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { IncomingMessage } from '../../src/store/types.js';
import { tempDir } from '../helpers/temp.js';

const message = (id: string): IncomingMessage => ({
  id,
  chat: 'c@s.whatsapp.net',
  from: 'c@s.whatsapp.net',
  fromMe: false,
  name: null,
  sentAt: null,
  kind: 'text',
  text: id,
  raw: '{}',
});

describe("serve's retention (WA_KEEP_DAYS)", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: SqliteStore;
  let raw: Database.Database;
  beforeEach(async () => {
    dir = await tempDir();
    store = new SqliteStore(join(dir.path, 'wa.db'));
    raw = new Database(join(dir.path, 'wa.db'));
  });
  afterEach(async () => {
    raw.close();
    await store.close();
    await dir.remove();
  });

  const age = (id: string, days: number): void => {
    const at = new Date(Date.now() - days * 86_400_000).toISOString();
    raw.prepare(`UPDATE wa_messages SET received_at = ? WHERE message_id = ?`).run(at, id);
    raw.prepare(`UPDATE wa_events SET at = ? WHERE message_id = ?`).run(at, id);
  };

  it('prunes at start what is older than keepDays, nothing younger, and again on every interval', async () => {
    await store.storeIncoming('s', [message('old'), message('young'), message('later')], { replay: false });
    age('old', 31);
    age('young', 29);
    const retention = startRetention(store, 30, pino({ level: 'silent' }), 100);
    await retention.first;
    expect((await store.readEvents()).map((e) => (e.type === 'message' ? e.id : e.type))).toEqual(['young', 'later']);
    age('later', 40);
    await new Promise((r) => setTimeout(r, 350));
    await retention.stop();
    expect((await store.readEvents()).map((e) => (e.type === 'message' ? e.id : e.type))).toEqual(['young']);
  });
});
