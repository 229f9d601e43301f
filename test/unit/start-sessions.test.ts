/**
 * startSessions() in process (README "Library"): options refused before anything is opened, and the API
 * around a running manager — events() as an iterator that resumes from a cursor, stops polling when the
 * loop is left and ends on close(), status(), send() checks, close() idempotent and releasing leases.
 * No WhatsApp server here: the sessions are unpaired, or paired against an endpoint nobody listens on
 * (test/e2e/library.test.ts runs the real thing).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startSessions, type StartSessionsOptions, type WaSessions } from '../../src/index.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';

const silent = pino({ level: 'silent' });
/** Fast leases and discovery; connects that fail back off for long enough not to spin. */
const timing = { leaseTtlMs: 3000, leaseRenewMs: 1000, discoveryMs: 500, connectsPerSecond: 1000 };

describe('startSessions() options', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it.each<[string, (db: string) => Partial<StartSessionsOptions>, string, RegExp]>([
    ['a missing db', () => ({ db: undefined }), 'E_CONFIG', /`db` must be/],
    ['an empty db', () => ({ db: ' ' }), 'E_CONFIG', /`db` must be/],
    ['a URL that is not PostgreSQL', () => ({ db: 'mysql://u:hunter2@h/db' }), 'E_CONFIG', /unsupported database URL/],
    [
      'a PostgreSQL URL that does not parse',
      () => ({ db: 'postgres://u:hunter2@h:99999/db' }),
      'E_CONFIG',
      /invalid PostgreSQL URL/,
    ],
    ['a wsUrl that is not ws://', (db) => ({ db, wsUrl: 'http://example.com' }), 'E_CONFIG', /ws:\/\/ or wss:\/\//],
    ['an unknown timing key', (db) => ({ db, timing: { leaseMs: 5 } as never }), 'E_CONFIG', /timing\.leaseMs/],
    ['a non-positive timing value', (db) => ({ db, timing: { keepAliveMs: 0 } }), 'E_CONFIG', /timing\.keepAliveMs/],
    [
      'inconsistent timing',
      (db) => ({ db, timing: { leaseTtlMs: 1000, leaseRenewMs: 1000 } }),
      'E_CONFIG',
      /leaseRenewMs must be less than leaseTtlMs/,
    ],
    ['keepDays of 0', (db) => ({ db, keepDays: 0 }), 'E_CONFIG', /keepDays/],
    ['an invalid session id', (db) => ({ db, sessions: ['no spaces'] }), 'E_SESSION_ID', /invalid session id/],
    ['sessions that are not an array', (db) => ({ db, sessions: 'bot' as never }), 'E_CONFIG', /must be an array/],
  ])('refuses %s with a usage error, before the database is created', async (_, make, code, message) => {
    const db = join(dir.path, 'wa.db');
    const error = await startSessions({ logger: silent, ...make(db) } as StartSessionsOptions).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'WaError', code, exitCode: 2, message: expect.stringMatching(message) });
    expect((error as Error).message).not.toContain('hunter2');
    expect(existsSync(db)).toBe(false);
  });

  it('refuses a session in `sessions` that does not exist, naming it, and leaves no lease', async () => {
    const db = join(dir.path, 'wa.db');
    const store = new SqliteStore(db);
    await store.createSession('bot', null);
    await expect(startSessions({ db, sessions: ['bot', 'ghost'], logger: silent })).rejects.toMatchObject({
      code: 'E_SESSION_UNKNOWN',
      exitCode: 2,
      message: expect.stringContaining("no session 'ghost'"),
    });
    expect((await store.getSession('bot'))?.lease).toBeNull();
    await store.close();
  });
});

describe('startSessions() on an encrypted database', () => {
  it('refuses a missing or wrong secret (exit 5) before any lease is taken, and opens with the right one', async () => {
    const dir = await tempDir();
    try {
      const db = join(dir.path, 'wa.db');
      const sealed = await startSessions({ db, secret: 'the right one', logger: silent });
      await sealed.close();
      for (const secret of [undefined, '', 'a wrong one']) {
        await expect(startSessions({ db, secret, logger: silent })).rejects.toMatchObject({
          name: 'WaError',
          exitCode: 5,
          code: secret ? 'E_WRONG_SECRET' : 'E_SECRET_REQUIRED',
        });
      }
      const again = await startSessions({ db, secret: 'the right one', wsUrl: '', logger: silent });
      expect((await again.status()).sessions).toEqual([]);
      await again.close();
    } finally {
      await dir.remove();
    }
  });
});

describe('a running startSessions()', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let db: string;
  let other: SqliteStore; // another process's view of the same database
  let wa: WaSessions | undefined;
  const cursors: string[] = [];

  const append = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await other.appendEvent('bot', { type: 'state', state: 'unpaired' });
  };

  beforeEach(async () => {
    dir = await tempDir();
    db = join(dir.path, 'wa.db');
    other = new SqliteStore(db);
    await other.createSession('bot', 'a bot');
    await other.createSession('idle', null);
    await append(3);
    cursors.splice(0, cursors.length, ...(await other.readEvents()).map((e) => e.cursor));
    wa = await startSessions({ db, sessions: ['bot'], logger: silent, timing });
  });
  afterEach(async () => {
    await wa?.close();
    await other.close();
    await dir.remove();
  });

  it('events({ follow: false }) reads the stored events oldest first and ends; `since` resumes after a cursor', async () => {
    const all = [];
    for await (const event of wa!.events({ follow: false })) all.push(event);
    expect(all.map((e) => e.cursor)).toEqual(cursors);
    expect(all[0]).toEqual({
      cursor: cursors[0],
      session: 'bot',
      at: expect.any(String),
      type: 'state',
      state: 'unpaired',
    });

    const after = [];
    for await (const event of wa!.events({ follow: false, since: cursors[1] })) after.push(event.cursor);
    expect(after).toEqual([cursors[2]]);
    // A cursor read back from a file with its newline, and an empty file, are what a bot hands over.
    const trimmed = [];
    for await (const event of wa!.events({ follow: false, since: `${cursors[1]}\n` })) trimmed.push(event.cursor);
    expect(trimmed).toEqual([cursors[2]]);
    const fromEmpty = [];
    for await (const event of wa!.events({ follow: false, since: '' })) fromEmpty.push(event.cursor);
    expect(fromEmpty).toEqual(cursors);
  });

  it('events() follows by default: new events arrive; leaving the loop stops the polling', async () => {
    const lastCursor = vi.spyOn(SqliteStore.prototype, 'lastCursor');
    const seen: string[] = [];
    const loop = (async () => {
      for await (const event of wa!.events()) {
        seen.push(event.cursor);
        if (seen.length === 5) break;
      }
    })();
    await until(() => seen.length === 3, 'the stored events');
    await append(2);
    await loop;
    expect(seen).toEqual([...cursors, ...(await other.readEvents({ since: cursors[2] })).map((e) => e.cursor)]);
    const polls = lastCursor.mock.calls.length;
    expect(polls).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1000)); // three poll intervals (FOLLOW_POLL_MS)
    expect(lastCursor.mock.calls.length).toBe(polls);
  });

  it('only the sessions asked for; a session that does not exist, or a bad cursor, is refused on the first next()', async () => {
    await other.appendEvent('idle', { type: 'state', state: 'unpaired' });
    const idle = [];
    for await (const event of wa!.events({ follow: false, sessions: ['idle'] })) idle.push(event.session);
    expect(idle).toEqual(['idle']);
    // The default is the `sessions` startSessions() was given.
    const mine = [];
    for await (const event of wa!.events({ follow: false })) mine.push(event.session);
    expect(new Set(mine)).toEqual(new Set(['bot']));

    await expect(wa!.events({ sessions: ['ghost'] }).next()).rejects.toMatchObject({ code: 'E_SESSION_UNKNOWN' });
    await expect(wa!.events({ since: 'latest' }).next()).rejects.toMatchObject({ code: 'E_USAGE', exitCode: 2 });
  });

  it('close() ends an iterator waiting for the next event, and every later one; it is idempotent', async () => {
    const iterator = wa!.events();
    for (let i = 0; i < 3; i++) expect((await iterator.next()).done).toBe(false);
    const waiting = iterator.next();
    await new Promise((r) => setTimeout(r, 400)); // it is polling now
    const started = Date.now();
    await Promise.all([wa!.close(), wa!.close()]);
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await wa!.events().next()).toEqual({ done: true, value: undefined });
    await expect(wa!.send('bot', '+15551234567', 'late')).rejects.toMatchObject({ code: 'E_CLOSED' });
    await expect(wa!.close()).resolves.toBeUndefined();
  });

  it('status() lists the sessions it runs, as wa status --json shows them, with the owner and the newest cursor', async () => {
    const status = await wa!.status();
    expect(status).toMatchObject({
      db: db,
      owner: expect.stringMatching(/^library-[0-9a-f]{8}$/),
      cursor: cursors[2],
      ready: true,
      waiting: [],
    });
    expect(status.sessions).toEqual([
      expect.objectContaining({
        id: 'bot',
        label: 'a bot',
        state: 'unpaired',
        connection: 'closed',
        owner: null,
        ownedHere: false,
      }),
    ]);
    expect(wa!.socket('bot')).toBeUndefined();
  });

  it('send() refuses what wa send refuses: an unknown session, an unpaired one, a bad recipient, empty text, a bad wait', async () => {
    await expect(wa!.send('ghost', '+15551234567', 'hi')).rejects.toMatchObject({
      code: 'E_SESSION_UNKNOWN',
      exitCode: 2,
    });
    await expect(wa!.send('bot', '+15551234567', 'hi')).rejects.toMatchObject({ code: 'E_NOT_PAIRED', exitCode: 3 });
    await expect(wa!.send('bot', '120363000000000000@g.us', 'hi')).rejects.toMatchObject({ exitCode: 2 });
    await expect(wa!.send('bot', '+15551234567', '')).rejects.toMatchObject({ code: 'E_TEXT' });
    await expect(wa!.send('bot', '+15551234567', 'hi', { wait: 'read' as never })).rejects.toMatchObject({
      code: 'E_USAGE',
    });
  });
});

describe('startSessions() with a paired session it cannot connect', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  afterEach(() => dir.remove());

  it('owns it (status, lease), queues by default, ends a wait for `sent` with E_CLOSED on close(), and releases the lease', async () => {
    dir = await tempDir();
    const db = join(dir.path, 'wa.db');
    const other = new SqliteStore(db);
    await other.createSession('bot', null);
    await other.updateSession('bot', { state: 'paired' });
    // Nobody listens on the discard port: every connect fails and backs off, the session stays ours.
    const wa = await startSessions({ db, wsUrl: 'ws://127.0.0.1:9/ws/chat', logger: silent, timing });
    try {
      const status = await until(async () => {
        const s = await wa.status();
        return s.sessions[0]?.ownedHere ? s : undefined;
      }, 'the session taken');
      expect(status.sessions[0]).toMatchObject({
        id: 'bot',
        ownedHere: true,
        owner: { id: status.owner, pid: process.pid },
      });
      expect((await other.getSession('bot'))?.lease?.ownerId).toBe(status.owner);

      const queued = await wa.send('bot', '+15551234567', 'hello', { key: 'k1' });
      expect(queued).toEqual({
        id: expect.any(String),
        session: 'bot',
        to: '15551234567@s.whatsapp.net',
        status: 'queued',
        code: null,
      });
      expect(await wa.send('bot', '+15551234567', 'hello again', { key: 'k1' })).toEqual(queued);

      const waiting = wa.send('bot', '+15551234568', 'never sent', { wait: 'sent' }).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 300));
      await wa.close();
      expect(await waiting).toMatchObject({ name: 'WaError', code: 'E_CLOSED', outgoing: { status: 'cancelled' } });
      expect((await other.getSession('bot'))?.lease).toBeNull();
      // The first message stays queued for the session's next owner.
      expect((await other.getOutgoing('bot', queued.id))?.status).toBe('queued');
    } finally {
      await wa.close();
      await other.close();
    }
  });
});
