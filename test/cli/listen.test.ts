/**
 * `wa listen` as a process over a database the test fills through the store: the event shapes in
 * NDJSON, readable lines with control characters escaped, --since exclusive, --limit, session filters,
 * unknown ids (exit 2), --follow until SIGINT (exit 0), and sealed content (WA_SECRET, wa rekey).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SealedStore } from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { IncomingMessage } from '../../src/store/types.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess } from '../helpers/wa-process.js';

const CHAT = '15550001111@s.whatsapp.net';
const msg = (id: string, text: string | null, extra: Partial<IncomingMessage> = {}): IncomingMessage => ({
  id,
  chat: CHAT,
  from: CHAT,
  fromMe: false,
  name: 'Ada',
  sentAt: '2026-01-02T03:04:05.000Z',
  kind: 'text',
  text,
  raw: JSON.stringify({ key: { id, remoteJid: CHAT }, message: { conversation: text } }),
  ...extra,
});
const parse = (stdout: string): Array<Record<string, unknown>> =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('wa listen', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let db: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await tempDir();
    db = join(dir.path, 'wa.db');
    store = new SqliteStore(db);
    await store.createSession('bot', null);
    await store.createSession('other', null);
  });
  afterEach(async () => {
    await store.close();
    await dir.remove();
  });

  it('prints every event oldest first as NDJSON in the documented shapes; --since is exclusive; --limit and ids filter', async () => {
    await store.storeIncoming('bot', [msg('A', 'first')], { replay: false });
    await store.storeIncoming('other', [msg('B', 'elsewhere')], { replay: true });
    await store.appendEvent('bot', { type: 'undecryptable', id: 'C', chat: CHAT, from: CHAT });
    await store.appendEvent('bot', { type: 'connection', connection: 'closed', code: 428, reason: 'connection lost' });

    const all = await runWa(['--db', db, 'listen', '--json']);
    expect(all.code).toBe(0);
    const events = parse(all.stdout);
    expect(events.map((e) => e.type)).toEqual(['message', 'message', 'undecryptable', 'connection']);
    expect(Object.keys(events[0]!)).toEqual([
      'cursor',
      'session',
      'at',
      'type',
      'id',
      'chat',
      'from',
      'fromMe',
      'name',
      'sentAt',
      'kind',
      'text',
      'replay',
      'raw',
    ]);
    expect(events[0]).toMatchObject({
      cursor: '1',
      session: 'bot',
      id: 'A',
      text: 'first',
      replay: false,
      fromMe: false,
    });
    expect(events[0]!.raw).toEqual({ key: { id: 'A', remoteJid: CHAT }, message: { conversation: 'first' } });
    expect(events[1]).toMatchObject({ session: 'other', replay: true });
    expect(Object.keys(events[2]!)).toEqual(['cursor', 'session', 'at', 'type', 'id', 'chat', 'from']);
    expect(events[3]).toMatchObject({ type: 'connection', connection: 'closed', code: 428, reason: 'connection lost' });

    const after = parse((await runWa(['--db', db, 'listen', '--json', '--since', String(events[1]!.cursor)])).stdout);
    expect(after.map((e) => e.cursor)).toEqual([events[2]!.cursor, events[3]!.cursor]);
    expect(parse((await runWa(['--db', db, 'listen', '--json', '--limit', '2'])).stdout).map((e) => e.cursor)).toEqual([
      '1',
      '2',
    ]);
    expect(parse((await runWa(['--db', db, 'listen', 'other', '--json'])).stdout).map((e) => e.id)).toEqual(['B']);
    expect(parse((await runWa(['--db', db, 'listen', 'bot', 'other', '--json'])).stdout)).toHaveLength(4);
  });

  it('prints one readable line per event, with control characters from WhatsApp escaped', async () => {
    await store.storeIncoming('bot', [msg('A', 'two\nlines \u001b[31mred', { name: 'Eve\u009b' })], { replay: false });
    await store.storeIncoming('bot', [msg('B', 'a cat', { kind: 'image' }), msg('C', 'mine', { fromMe: true })], {
      replay: true,
    });
    const res = await runWa(['--db', db, 'listen']);
    expect(res.code).toBe(0);
    const lines = res.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}bot {2}← 15550001111@s\.whatsapp\.net \(Eve\\u009b\) {2}two\\nlines \\x1b\[31mred$/,
    );
    expect(lines[1]).toMatch(/← 15550001111@s\.whatsapp\.net \(Ada\) {2}\[image\] a cat {2}\(offline\)$/);
    expect(lines[2]).toMatch(/→ 15550001111@s\.whatsapp\.net {2}mine {2}\(offline\)$/);
    // eslint-disable-next-line no-control-regex -- no raw control character may reach the terminal
    expect(res.stdout.replace(/\n/g, '')).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('refuses unknown session ids (exit 2) and bad flags, and prints nothing for an empty log', async () => {
    const unknown = await runWa(['--db', db, 'listen', 'bot', 'nobody']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no session 'nobody'/);
    expect((await runWa(['--db', db, 'listen', '--since', 'latest'])).code).toBe(2);
    expect((await runWa(['--db', db, 'listen', '--limit', '0'])).code).toBe(2);
    const empty = await runWa(['--db', db, 'listen', '--json']);
    expect(empty).toMatchObject({ code: 0, stdout: '' });
    const missing = await runWa(['--db', join(dir.path, 'none.db'), 'listen', 'bot']);
    expect(missing.code).toBe(2);
  });

  it('--follow prints what is stored, then each new event as it is stored, and exits 0 on SIGINT', async () => {
    await store.storeIncoming('bot', [msg('A', 'before')], { replay: false });
    const follow = new WaProcess(['listen', 'bot', '--follow', '--json'], { WA_DB: db });
    await follow.waitForLine((l) => l.id === 'A');
    await store.storeIncoming('other', [msg('X', 'not for this listener')], { replay: false });
    await store.storeIncoming('bot', [msg('B', 'while following')], { replay: false });
    const line = await follow.waitForLine((l) => l.id === 'B', 10_000);
    expect(line).toMatchObject({ type: 'message', text: 'while following', session: 'bot' });
    follow.child.kill('SIGINT');
    expect((await follow.exited).code).toBe(0);
    expect(follow.lines.map((l) => l.id)).toEqual(['A', 'B']);
  });

  it('opens sealed content with WA_SECRET (exit 5 without it), including messages sealed later by wa rekey', async () => {
    await store.storeIncoming('bot', [msg('A', 'stored in clear')], { replay: false });
    await store.close();
    const sealed = await runWa(['--db', db, 'rekey'], { env: { WA_NEW_SECRET: 'listen secret' } });
    expect(sealed.code, sealed.stderr).toBe(0);
    const raw = new Database(db, { readonly: true });
    expect(JSON.stringify(raw.prepare('SELECT text, raw FROM wa_messages').all())).not.toContain('stored in clear');
    raw.close();
    const reopened = new SealedStore(new SqliteStore(db), { secret: 'listen secret' });
    await reopened.storeIncoming('bot', [msg('B', 'sealed from the start')], { replay: false });
    await reopened.close();
    store = new SqliteStore(db); // for afterEach

    const res = await runWa(['--db', db, 'listen', '--json'], { env: { WA_SECRET: 'listen secret' } });
    expect(res.code, res.stderr).toBe(0);
    expect(parse(res.stdout).map((e) => e.text)).toEqual(['stored in clear', 'sealed from the start']);
    const without = await runWa(['--db', db, 'listen']);
    expect(without.code).toBe(5);
    expect(without.stdout).toBe('');
  });
});
