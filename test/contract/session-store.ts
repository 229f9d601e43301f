/**
 * The one contract every SessionStore backend passes. A backend test file calls
 * describeSessionStore() with a factory; nothing here knows which database is underneath.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { IncomingMessage, OutgoingInput, SessionStore, StoredEvent } from '../../src/store/types.js';
import { until } from '../helpers/until.js';

/** Secret and a cheap scrypt for the sealed runs: the contract opens dozens of databases. */
export const SEALING = { secret: 'contract secret', cost: { N: 2 ** 10, r: 8, p: 1 } };

export interface StoreHarness {
  store: SessionStore;
  /** Closes the store and opens a new one on the same database. */
  reopen(): Promise<SessionStore>;
  /** Makes the database itself reject any write of this data key (a trigger), to prove atomicity. */
  failWritesOf(dataKey: string): Promise<void>;
  /** Writes a raw row into whatsapp_auth, bypassing the store (seed databases, corruption). */
  writeRaw(sessionId: string, dataKey: string, value: string): Promise<void>;
  /** Runs SQL on the database itself, bypassing the store (`?` placeholders on both backends); returns rows. */
  sql(query: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** Makes the database reject every insert into wa_events (a trigger), to prove a message and its event commit together. */
  failEventWrites(): Promise<void>;
  cleanup(): Promise<void>;
}

const paired = { paired: true, jid: '15551234567:3@s.whatsapp.net', name: 'Ada' };
const unpaired = { paired: false, jid: null, name: null };
const owner = (ownerId: string) => ({ ownerId, host: 'host-a', pid: 1234 });

const CHAT = '15550001111@s.whatsapp.net';
const message = (
  id: string,
  text: string | null = `text of ${id}`,
  extra: Partial<IncomingMessage> = {},
): IncomingMessage => ({
  id,
  chat: CHAT,
  from: CHAT,
  fromMe: false,
  name: 'Ada',
  sentAt: '2026-01-02T03:04:05.000Z',
  kind: 'text',
  text,
  raw: JSON.stringify({
    key: { id, remoteJid: CHAT },
    message: { conversation: text },
    buf: { type: 'Buffer', data: 'AAE=' },
  }),
  ...extra,
});
const messageIds = (events: StoredEvent[]): string[] =>
  events.flatMap((e) => (e.type === 'message' ? [`${e.session}/${e.id}`] : []));

export interface ContractOptions {
  /**
   * The backend sits under a SealedStore (test/contract/sqlite-sealed.test.ts), so the text it stores is
   * sealed and it cannot read creds itself. That changes one expectation: a session found only in
   * whatsapp_auth is still adopted and listed, but the backend cannot summarize (phone, name, paired)
   * creds it cannot read. Under wa such rows only come from foreign writers, which cannot seal.
   */
  opaqueValues?: boolean;
}

export function describeSessionStore(
  name: string,
  makeHarness: () => Promise<StoreHarness>,
  options: ContractOptions = {},
): void {
  describe(`SessionStore contract: ${name}`, () => {
    let h: StoreHarness;
    let store: SessionStore;
    beforeEach(async () => {
      h = await makeHarness();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('registers sessions and refuses a duplicate id', async () => {
      const created = await store.createSession('b', 'second');
      expect(created).toMatchObject({ id: 'b', label: 'second', state: 'unpaired', connection: 'closed', lease: null });
      expect(Date.parse(created.createdAt)).not.toBeNaN();
      await store.createSession('a', null);
      await expect(store.createSession('a', null)).rejects.toMatchObject({ code: 'E_SESSION_EXISTS', exitCode: 2 });
      expect((await store.listSessions()).map((s) => s.id)).toEqual(['a', 'b']);
      expect(await store.getSession('missing')).toBeUndefined();
    });

    it('reads back what it wrote, deletes on null, and accepts empty batches', async () => {
      await store.writeValues('s', [
        ['pre-key-1', '{"a":1}'],
        ['session-1_1.0', '"x"'],
      ]);
      await store.writeValues('s', []);
      expect(await store.readValues('s', [])).toEqual(new Map());
      expect(await store.readValues('s', ['pre-key-1', 'session-1_1.0', 'pre-key-404'])).toEqual(
        new Map([
          ['pre-key-1', '{"a":1}'],
          ['session-1_1.0', '"x"'],
        ]),
      );
      await store.writeValues('s', [
        ['pre-key-1', null],
        ['session-1_1.0', '"y"'],
        ['pre-key-404', null],
      ]);
      expect(await store.readValues('s', ['pre-key-1', 'session-1_1.0'])).toEqual(new Map([['session-1_1.0', '"y"']]));
    });

    it('applies the last change when a batch names one key twice', async () => {
      await store.writeValues('s', [
        ['k-1', '"first"'],
        ['k-1', '"second"'],
      ]);
      expect(await store.readValues('s', ['k-1'])).toEqual(new Map([['k-1', '"second"']]));
    });

    it('keeps sessions apart', async () => {
      await store.writeValues('one', [['pre-key-1', '"one"']]);
      await store.writeValues('two', [['pre-key-1', '"two"']]);
      expect(await store.readValues('one', ['pre-key-1'])).toEqual(new Map([['pre-key-1', '"one"']]));
      await store.clearAuth('two');
      expect(await store.readValues('one', ['pre-key-1'])).toEqual(new Map([['pre-key-1', '"one"']]));
      expect(await store.readValues('two', ['pre-key-1'])).toEqual(new Map());
    });

    it('applies a batch whole or not at all when the database rejects one write', async () => {
      await store.writeValues('s', [['pre-key-1', '"before"']]);
      await h.failWritesOf('session-boom');
      const batch: Array<[string, string | null]> = [
        ['pre-key-1', null],
        ['pre-key-2', '"new"'],
        ['session-boom', '"fails"'],
        ['sender-key-g', '"never"'],
      ];
      await expect(store.writeValues('s', batch)).rejects.toThrow();
      expect(await store.readValues('s', ['pre-key-1', 'pre-key-2', 'session-boom', 'sender-key-g'])).toEqual(
        new Map([['pre-key-1', '"before"']]),
      );
    });

    it('handles a first-login batch of 812 pre-keys in one call', async () => {
      const changes = Array.from({ length: 812 }, (_, i) => [`pre-key-${i + 1}`, `{"id":${i + 1}}`] as const);
      await store.writeValues('s', changes);
      const ids = changes.map(([key]) => key);
      const read = await store.readValues('s', ids);
      expect(read.size).toBe(812);
      expect(read.get('pre-key-812')).toBe('{"id":812}');
    });

    it('saves creds with a summary that drives the state', async () => {
      await store.createSession('s', null);
      await store.writeCreds('s', '{"me":null}', unpaired);
      expect(await store.getSession('s')).toMatchObject({ state: 'unpaired', jid: null, pairedAt: null });
      await store.writeCreds('s', '{"account":{}}', paired);
      const session = await store.getSession('s');
      expect(session).toMatchObject({ state: 'paired', jid: paired.jid, name: 'Ada' });
      expect(session?.pairedAt).toBeTruthy();
      expect(await store.readCreds('s')).toBe('{"account":{}}');
    });

    it('registers a session on its first creds write (library use without wa add)', async () => {
      await store.writeCreds('lib', '{}', paired);
      expect(await store.getSession('lib')).toMatchObject({ id: 'lib', state: 'paired' });
    });

    it('keeps a stop state through creds writes until auth is cleared', async () => {
      await store.writeCreds('s', '{}', paired);
      await store.updateSession('s', {
        state: 'logged_out',
        lastDisconnect: { code: 401, reason: 'logged out', at: '2026-01-01T00:00:00.000Z' },
      });
      await store.writeCreds('s', '{}', paired);
      expect(await store.getSession('s')).toMatchObject({
        state: 'logged_out',
        lastDisconnect: { code: 401, reason: 'logged out', at: '2026-01-01T00:00:00.000Z' },
      });
      await store.clearAuth('s');
      expect(await store.getSession('s')).toMatchObject({ state: 'unpaired', jid: null });
      expect(await store.readCreds('s')).toBeUndefined();
    });

    it('records live connection fields', async () => {
      await store.createSession('s', null);
      await store.updateSession('s', { connection: 'open', lastConnectedAt: '2026-02-02T00:00:00.000Z' });
      expect(await store.getSession('s')).toMatchObject({
        connection: 'open',
        lastConnectedAt: '2026-02-02T00:00:00.000Z',
      });
      await store.updateSession('s', { lastDisconnect: null });
      expect((await store.getSession('s'))?.lastDisconnect).toBeNull();
    });

    it('lists data keys without values, and clears every key but creds', async () => {
      await store.writeCreds('s', '{"c":1}', unpaired);
      await store.writeValues('s', [
        ['session-2', '"b"'],
        ['pre-key-1', '"a"'],
      ]);
      await store.writeValues('other', [['pre-key-1', '"o"']]);
      expect(await store.listKeys('s')).toEqual(['creds', 'pre-key-1', 'session-2']);
      expect(await store.listKeys('nobody')).toEqual([]);
      await store.acquireLease('s', owner('a'), 30_000, false);
      await expect(store.clearKeys('s', { fence: 'b' })).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
      expect(await store.listKeys('s')).toEqual(['creds', 'pre-key-1', 'session-2']);
      await store.clearKeys('s', { fence: 'a' });
      expect(await store.readAll('s')).toEqual([['creds', '{"c":1}']]);
      expect(await store.listKeys('other')).toEqual(['pre-key-1']);
    });

    it('exports everything in key order and replaces everything on import', async () => {
      await store.writeValues('s', [
        ['session-2', '"b"'],
        ['pre-key-1', '"a"'],
      ]);
      await store.writeCreds('s', '{"c":1}', unpaired);
      expect(await store.readAll('s')).toEqual([
        ['creds', '{"c":1}'],
        ['pre-key-1', '"a"'],
        ['session-2', '"b"'],
      ]);
      await store.replaceAll(
        's',
        [
          ['creds', '{"c":2}'],
          ['tctoken-__index', '[]'],
        ],
        paired,
      );
      expect(await store.readAll('s')).toEqual([
        ['creds', '{"c":2}'],
        ['tctoken-__index', '[]'],
      ]);
      expect(await store.getSession('s')).toMatchObject({ state: 'paired', jid: paired.jid });
    });

    it('rolls an import back whole when one row fails', async () => {
      await store.writeCreds('s', '{"old":true}', paired);
      await h.failWritesOf('session-boom');
      await expect(
        store.replaceAll(
          's',
          [
            ['creds', '{"new":true}'],
            ['session-boom', '"x"'],
          ],
          unpaired,
        ),
      ).rejects.toThrow();
      expect(await store.readAll('s')).toEqual([['creds', '{"old":true}']]);
      expect(await store.getSession('s')).toMatchObject({ state: 'paired' });
    });

    it('deletes a session with its data and lease', async () => {
      await store.writeCreds('s', '{}', paired);
      await store.writeValues('s', [['pre-key-1', '"a"']]);
      await store.acquireLease('s', owner('me'), 30_000, false);
      expect(await store.deleteSession('s')).toBe(true);
      expect(await store.getSession('s')).toBeUndefined();
      expect(await store.readAll('s')).toEqual([]);
      expect(await store.deleteSession('s')).toBe(false);
      await store.createSession('s', null);
      expect((await store.getSession('s'))?.lease).toBeNull();
    });

    it('gives a lease to one owner at a time, with takeover and expiry', async () => {
      await store.createSession('s', null);
      const first = await store.acquireLease('s', owner('a'), 30_000, false);
      expect(first.acquired).toBe(true);
      expect((await store.getSession('s'))?.lease).toMatchObject({ ownerId: 'a', host: 'host-a', pid: 1234 });
      expect(await store.acquireLease('s', owner('a'), 30_000, false)).toMatchObject({ acquired: true });
      const busy = await store.acquireLease('s', owner('b'), 30_000, false);
      expect(busy).toMatchObject({ acquired: false, holder: { ownerId: 'a' } });
      expect(await store.renewLease('s', 'a', 30_000)).toBe(true);
      expect(await store.acquireLease('s', owner('b'), 30_000, true)).toMatchObject({ acquired: true });
      expect(await store.renewLease('s', 'a', 30_000)).toBe(false);
      await store.releaseLease('s', 'a'); // not a's any more: must not drop b's lease
      expect((await store.getSession('s'))?.lease?.ownerId).toBe('b');
      await store.releaseLease('s', 'b');
      expect((await store.getSession('s'))?.lease).toBeNull();
      // A conditional takeover only replaces the owner it names.
      await store.acquireLease('s', owner('e'), 30_000, false);
      expect(await store.acquireLease('s', owner('f'), 30_000, { from: 'someone-else' })).toMatchObject({
        acquired: false,
        holder: { ownerId: 'e' },
      });
      expect(await store.acquireLease('s', owner('f'), 30_000, { from: 'e' })).toMatchObject({ acquired: true });
      await store.releaseLease('s', 'f');
      // An expired lease belongs to nobody: hidden from readers and free to take.
      await store.acquireLease('s', owner('c'), -1, false);
      expect((await store.getSession('s'))?.lease).toBeNull();
      expect(await store.acquireLease('s', owner('d'), 30_000, false)).toMatchObject({ acquired: true });
    });

    it('fences auth writes by the lease: only a live owner commits, a deposed one gets E_LEASE_LOST and applies nothing', async () => {
      await store.createSession('s', null);
      const fenced = (ownerId: string) => ({ fence: ownerId });
      // No lease at all: nobody may write fenced.
      await expect(store.writeValues('s', [['pre-key-1', '"x"']], fenced('a'))).rejects.toMatchObject({
        code: 'E_LEASE_LOST',
        exitCode: 6,
      });
      await store.acquireLease('s', owner('a'), 30_000, false);
      await store.writeValues('s', [['pre-key-1', '"a1"']], fenced('a'));
      await store.writeCreds('s', '{"nextPreKeyId":2}', unpaired, fenced('a'));
      // b takes over; a's writes (values and creds) are refused whole, b's go through.
      await store.acquireLease('s', owner('b'), 30_000, true);
      await expect(
        store.writeValues(
          's',
          [
            ['pre-key-1', null],
            ['pre-key-2', '"a2"'],
          ],
          fenced('a'),
        ),
      ).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
      await store.writeCreds('s', '{"nextPreKeyId":9}', unpaired, fenced('b'));
      await expect(store.writeCreds('s', '{"nextPreKeyId":2}', paired, fenced('a'))).rejects.toMatchObject({
        code: 'E_LEASE_LOST',
        exitCode: 6,
      });
      expect(await store.readValues('s', ['pre-key-1', 'pre-key-2'])).toEqual(new Map([['pre-key-1', '"a1"']]));
      expect(await store.readCreds('s')).toBe('{"nextPreKeyId":9}');
      expect(await store.getSession('s')).toMatchObject({ state: 'unpaired' });
      // An expired lease fences out even its own owner; an unfenced write is unconditional as before.
      await store.acquireLease('s', owner('b'), -1, true);
      await expect(store.writeValues('s', [['pre-key-3', '"b3"']], fenced('b'))).rejects.toMatchObject({
        code: 'E_LEASE_LOST',
      });
      await store.writeValues('s', [['pre-key-3', '"free"']]);
      expect(await store.readValues('s', ['pre-key-3'])).toEqual(new Map([['pre-key-3', '"free"']]));
    });

    it("renews all of one owner's leases at once", async () => {
      for (const id of ['a', 'b', 'c']) await store.createSession(id, null);
      await store.acquireLease('a', owner('d1'), 1000, false);
      await store.acquireLease('b', owner('d1'), 1000, false);
      await store.acquireLease('c', owner('d2'), 1000, false);
      expect((await store.renewLeases('d1', 60_000)).sort()).toEqual(['a', 'b']);
      expect((await store.getSession('a'))?.lease?.expiresAt).toBeGreaterThan(Date.now() + 50_000);
      expect((await store.getSession('c'))?.lease?.expiresAt).toBeLessThan(Date.now() + 2000);
      await store.acquireLease('b', owner('d2'), 1000, true);
      expect(await store.renewLeases('d1', 60_000)).toEqual(['a']);
    });

    it('keeps database-wide settings', async () => {
      expect(await store.getMeta('x')).toBeUndefined();
      await store.setMeta('x', 'one');
      await store.setMeta('x', 'two');
      expect(await store.getMeta('x')).toBe('two');
    });

    it('inserts a meta entry only if absent (first writer wins), and not while values exist if asked', async () => {
      expect(await store.insertMetaIfAbsent('k', 'first')).toEqual({ value: 'first', inserted: true });
      expect(await store.insertMetaIfAbsent('k', 'second')).toEqual({ value: 'first', inserted: false });
      expect(await store.getMeta('k')).toBe('first');
      const racing = await Promise.all(['a', 'b', 'c'].map((v) => store.insertMetaIfAbsent('race', v)));
      expect(racing.filter((r) => r.inserted)).toHaveLength(1);
      expect(new Set(racing.map((r) => r.value)).size).toBe(1);
      await store.writeValues('s', [['pre-key-1', '"v"']]);
      expect(await store.insertMetaIfAbsent('other', 'x', { unlessValues: true })).toEqual({
        value: undefined,
        inserted: false,
      });
      expect(await store.getMeta('other')).toBeUndefined();
      expect(await store.insertMetaIfAbsent('k', 'third', { unlessValues: true })).toEqual({
        value: 'first',
        inserted: false,
      });
    });

    it('rewrites every value of every session in one transaction, or none when one fails', async () => {
      expect(await store.hasValues()).toBe(false);
      await store.writeCreds('a', '{"n":1}', unpaired);
      await store.writeValues('a', [['pre-key-1', '"p"']]);
      await store.writeValues('b', [['session-1', '"s"']]);
      expect(await store.hasValues()).toBe(true);
      const count = await store.rewriteAll((v, id, key) => `${id}/${key}/${v}`, { marker: 'done', gone: null });
      expect(count).toBe(3);
      expect(await store.readAll('a')).toEqual([
        ['creds', 'a/creds/{"n":1}'],
        ['pre-key-1', 'a/pre-key-1/"p"'],
      ]);
      expect(await store.getMeta('marker')).toBe('done');
      await expect(
        store.rewriteAll(
          (v, id) => {
            if (id === 'b') throw new Error('mid-way failure');
            return 'changed';
          },
          { marker: 'half' },
        ),
      ).rejects.toThrow('mid-way failure');
      expect(await store.readValues('a', ['pre-key-1'])).toEqual(new Map([['pre-key-1', 'a/pre-key-1/"p"']]));
      expect(await store.getMeta('marker')).toBe('done');
    });

    it('compacts after a rewrite, keeping every live value, and exposes the raw store below any decorator', async () => {
      await store.writeCreds('a', '{"n":1}', unpaired);
      await store.writeValues('a', [['pre-key-1', '"p"']]);
      await store.rewriteAll((v) => `${v} `, {});
      expect(await store.compact()).toBe(true);
      expect(await store.readAll('a')).toEqual([
        ['creds', '{"n":1} '],
        ['pre-key-1', '"p" '],
      ]);
      const raw = store.raw();
      expect(raw.raw()).toBe(raw);
      expect(await raw.listKeys('a')).toEqual(['creds', 'pre-key-1']);
      if (options.opaqueValues) expect(raw).not.toBe(store);
      else expect(raw).toBe(store);
    });

    it('keeps everything across close and reopen', async () => {
      await store.writeCreds('s', '{"k":1}', paired);
      await store.writeValues('s', [['pre-key-1', '"v"']]);
      store = await h.reopen();
      expect(await store.readCreds('s')).toBe('{"k":1}');
      expect(await store.readValues('s', ['pre-key-1'])).toEqual(new Map([['pre-key-1', '"v"']]));
      expect(await store.getSession('s')).toMatchObject({ state: 'paired' });
    });

    it('adopts sessions found only in whatsapp_auth, and flags corrupt creds', async () => {
      await h.writeRaw(
        'seeded',
        'creds',
        JSON.stringify({ me: { id: '4912345:1@s.whatsapp.net', name: 'Bo' }, account: {} }),
      );
      await h.writeRaw('seeded', 'pre-key-1', '{}');
      await h.writeRaw('broken', 'creds', '{"noiseKey":{"private":{"type":"Buf');
      const sessions = await store.listSessions();
      expect(sessions.map((s) => s.id)).toEqual(['broken', 'seeded']);
      expect(sessions[1]).toMatchObject(
        options.opaqueValues
          ? { id: 'seeded', state: 'unpaired', jid: null, corruptKey: null }
          : { state: 'paired', jid: '4912345:1@s.whatsapp.net', name: 'Bo', corruptKey: null },
      );
      expect(sessions[0]).toMatchObject({ id: 'broken', state: 'unpaired' });
      expect(await store.getSession('broken')).toMatchObject({ corruptKey: 'creds' });
      expect(await store.getSession('seeded')).toMatchObject({ corruptKey: null });
    });

    it('does not adopt session ids from whatsapp_auth that fail the session id pattern, and reports them', async () => {
      await h.writeRaw('ok', 'creds', '{}');
      await h.writeRaw('../evil', 'creds', '{}');
      await h.writeRaw('has space', 'creds', '{}');
      expect((await store.listSessions()).map((s) => s.id)).toEqual(['ok']);
      expect([...store.skippedIds].sort()).toEqual(['../evil', 'has space']);
      expect(await store.getSession('../evil')).toBeUndefined();
      expect(await store.readCreds('../evil')).toBe('{}');
    });

    it('stores each message once with one message event, in order, and reads the exact event shape back', async () => {
      expect(await store.lastCursor()).toBe('0');
      expect(
        await store.storeIncoming('s', [message('m1'), message('m2', null, { kind: 'image' })], { replay: false }),
      ).toBe(2);
      // Delivered again (a re-sent stanza, an offline replay): no new message, no new event.
      expect(await store.storeIncoming('s', [message('m1', 'changed'), message('m3')], { replay: true })).toBe(1);
      // The same id from another sender, or in another session, is another message.
      expect(
        await store.storeIncoming('s', [message('m1', 'other sender', { from: '15550002222@s.whatsapp.net' })], {
          replay: false,
        }),
      ).toBe(1);
      expect(await store.storeIncoming('t', [message('m1')], { replay: false })).toBe(1);
      const events = await store.readEvents();
      expect(messageIds(events)).toEqual(['s/m1', 's/m2', 's/m3', 's/m1', 't/m1']);
      const cursors = events.map((e) => BigInt(e.cursor));
      expect([...cursors].sort((a, b) => (a < b ? -1 : 1))).toEqual(cursors);
      expect(new Set(cursors).size).toBe(cursors.length);
      expect(events[0]).toEqual({
        cursor: expect.stringMatching(/^[1-9]\d*$/) as unknown,
        session: 's',
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        type: 'message',
        id: 'm1',
        chat: CHAT,
        from: CHAT,
        fromMe: false,
        name: 'Ada',
        sentAt: '2026-01-02T03:04:05.000Z',
        kind: 'text',
        text: 'text of m1',
        replay: false,
        raw: message('m1').raw,
      });
      expect(events[1]).toMatchObject({ kind: 'image', text: null, replay: false });
      expect(events[2]).toMatchObject({ id: 'm3', replay: true });
      expect(await store.lastCursor()).toBe(events[events.length - 1]!.cursor);
      const rows = await h.sql(`SELECT direction, from_me FROM wa_messages WHERE message_id = 'm2'`);
      expect(rows.map((r) => [r.direction, Boolean(r.from_me)])).toEqual([['in', false]]);
    });

    it('stores own messages from other devices as outgoing, flagged fromMe', async () => {
      await store.storeIncoming(
        's',
        [message('own', 'from my phone', { fromMe: true, from: '15559990000@s.whatsapp.net' })],
        {
          replay: false,
        },
      );
      expect((await store.readEvents())[0]).toMatchObject({ type: 'message', fromMe: true, text: 'from my phone' });
      const rows = await h.sql(`SELECT direction FROM wa_messages`);
      expect(rows.map((r) => r.direction)).toEqual(['out']);
    });

    it('writes a message and its event in one transaction: when the event insert fails, the message is not kept', async () => {
      await store.storeIncoming('s', [message('before')], { replay: false });
      await h.failEventWrites();
      await expect(
        store.storeIncoming('s', [message('lost-together'), message('also')], { replay: false }),
      ).rejects.toThrow();
      expect((await h.sql(`SELECT message_id FROM wa_messages ORDER BY message_id`)).map((r) => r.message_id)).toEqual([
        'before',
      ]);
      expect(messageIds(await store.readEvents())).toEqual(['s/before']);
    });

    it('reads after a cursor (exclusive), up to a limit, for some sessions only', async () => {
      for (const id of ['a1', 'a2', 'a3']) await store.storeIncoming('a', [message(id)], { replay: false });
      await store.storeIncoming('b', [message('b1')], { replay: false });
      await store.appendEvent('a', { type: 'connection', connection: 'open', code: null, reason: null });
      const all = await store.readEvents();
      expect(all.map((e) => e.type)).toEqual(['message', 'message', 'message', 'message', 'connection']);
      expect(messageIds(await store.readEvents({ since: all[1]!.cursor }))).toEqual(['a/a3', 'b/b1']);
      expect(await store.readEvents({ since: all[4]!.cursor })).toEqual([]);
      expect(messageIds(await store.readEvents({ limit: 2 }))).toEqual(['a/a1', 'a/a2']);
      expect(messageIds(await store.readEvents({ since: all[0]!.cursor, limit: 1 }))).toEqual(['a/a2']);
      expect((await store.readEvents({ sessions: ['b'] })).map((e) => e.session)).toEqual(['b']);
      expect((await store.readEvents({ sessions: ['a', 'b'], since: all[2]!.cursor })).map((e) => e.type)).toEqual([
        'message',
        'connection',
      ]);
      expect(await store.readEvents({ sessions: ['nobody'] })).toEqual([]);
      expect(all[4]).toEqual({
        cursor: all[4]!.cursor,
        session: 'a',
        at: all[4]!.at,
        type: 'connection',
        connection: 'open',
        code: null,
        reason: null,
      });
    });

    it('keeps an undecryptable event once, and none for a message already stored; the message still arrives once', async () => {
      const stub = { type: 'undecryptable', id: 'u1', chat: CHAT, from: CHAT } as const;
      expect(await store.appendEvent('s', stub)).toBe(true);
      expect(await store.appendEvent('s', stub)).toBe(false);
      // The retry was answered: the same id arrives decrypted, and is stored as its one message.
      expect(await store.storeIncoming('s', [message('u1', 'decrypted at last')], { replay: false })).toBe(1);
      await store.storeIncoming('s', [message('m1')], { replay: false });
      expect(await store.appendEvent('s', { ...stub, id: 'm1' })).toBe(false); // a re-delivered copy of a stored one
      await store.appendEvent('s', { type: 'state', state: 'logged_out' });
      const events = await store.readEvents();
      expect(events.map((e) => [e.type, 'id' in e ? e.id : null])).toEqual([
        ['undecryptable', 'u1'],
        ['message', 'u1'],
        ['message', 'm1'],
        ['state', null],
      ]);
      expect(events[0]).toEqual({ cursor: events[0]!.cursor, session: 's', at: events[0]!.at, ...stub });
      expect(events[1]).toMatchObject({ text: 'decrypted at last' });
      expect(events[3]).toMatchObject({ type: 'state', state: 'logged_out' });
    });

    it('prunes messages and events older than the retention, and nothing younger; cursors are not reused', async () => {
      await store.storeIncoming('s', [message('old'), message('new')], { replay: false });
      await store.appendEvent('s', { type: 'connection', connection: 'closed', code: 428, reason: 'connection lost' });
      expect(await store.pruneMessages(60 * 60_000)).toEqual({ messages: 0, events: 0 });
      const old = new Date(Date.now() - 2 * 86_400_000).toISOString();
      await h.sql(`UPDATE wa_messages SET received_at = ? WHERE message_id = 'old'`, [old]);
      await h.sql(`UPDATE wa_events SET at = ? WHERE message_id = 'old' OR type = 'connection'`, [old]);
      expect(await store.pruneMessages(86_400_000)).toEqual({ messages: 1, events: 2 });
      const left = await store.readEvents();
      expect(messageIds(left)).toEqual(['s/new']);
      expect((await h.sql(`SELECT message_id FROM wa_messages`)).map((r) => r.message_id)).toEqual(['new']);
      // Everything pruned: the next event still gets a cursor after every one handed out before.
      await h.sql(`UPDATE wa_events SET at = ?`, [old]);
      await h.sql(`UPDATE wa_messages SET received_at = ?`, [old]);
      await store.pruneMessages(86_400_000);
      await store.storeIncoming('s', [message('later')], { replay: false });
      const [later] = await store.readEvents();
      expect(BigInt(later!.cursor)).toBeGreaterThan(BigInt(left[0]!.cursor));
    });

    it('appends a state event for each change of a session state, in the transaction that makes it, and none otherwise', async () => {
      await store.createSession('s', null);
      await store.writeCreds('s', '{"me":{}}', unpaired); // still unpaired: no change
      await store.writeCreds('s', '{"account":{}}', paired); // paired
      await store.writeCreds('s', '{"account":{},"x":1}', paired); // still paired
      await store.updateSession('s', { state: 'paired', connection: 'open' }); // no change
      await store.updateSession('s', { connection: 'closed' });
      await store.updateSession('s', { state: 'logged_out' });
      await store.clearAuth('s'); // unpaired
      await store.clearAuth('s'); // still unpaired
      await store.replaceAll('s', [['creds', '{"account":{}}']], paired); // paired
      await store.updateSession('s', { state: 'replaced' });
      const events = await store.readEvents();
      expect(events.map((e) => (e.type === 'state' ? e.state : e.type))).toEqual([
        'paired',
        'logged_out',
        'unpaired',
        'paired',
        'replaced',
      ]);
      expect(events[0]).toEqual({
        cursor: events[0]!.cursor,
        session: 's',
        at: events[0]!.at,
        type: 'state',
        state: 'paired',
      });
    });

    it("deletes a session's messages and events with it", async () => {
      await store.createSession('gone', null);
      await store.storeIncoming('gone', [message('m1')], { replay: false });
      await store.storeIncoming('kept', [message('m1')], { replay: false });
      expect(await store.deleteSession('gone')).toBe(true);
      expect((await store.readEvents()).map((e) => e.session)).toEqual(['kept']);
      expect((await h.sql(`SELECT session_id FROM wa_messages`)).map((r) => r.session_id)).toEqual(['kept']);
    });

    it('keeps messages across reopen, and seals their content when the store is sealed', async () => {
      await store.storeIncoming('s', [message('secret', 'the secret text')], { replay: false });
      store = await h.reopen();
      const [event] = await store.readEvents();
      expect(event).toMatchObject({
        type: 'message',
        id: 'secret',
        text: 'the secret text',
        raw: message('secret', 'the secret text').raw,
      });
      const rows = await h.sql(`SELECT text, raw FROM wa_messages`);
      const stored = JSON.stringify(rows);
      if (options.opaqueValues) {
        expect(stored).not.toContain('the secret text');
        expect(String(rows[0]!.text)).toMatch(/^wa1:/);
        expect(String(rows[0]!.raw)).toMatch(/^wa1:/);
        // Bound to its row: sealed text moved to another message does not open.
        await store.storeIncoming('s', [message('other', 'other text')], { replay: false });
        await h.sql(`UPDATE wa_messages SET text = ? WHERE message_id = 'other'`, [rows[0]!.text]);
        await expect(store.readEvents()).rejects.toMatchObject({ code: 'E_UNSEAL' });
      } else {
        expect(rows[0]!.text).toBe('the secret text');
      }
    });

    it('counts stored messages as values and rewrites their content with every value', async () => {
      expect(await store.hasValues()).toBe(false);
      await store.storeIncoming('s', [message('m1', 'one'), message('m2', null)], { replay: false });
      expect(await store.hasValues()).toBe(true);
      const seen: string[] = [];
      const count = await store.rewriteAll((value, sessionId, dataKey) => {
        seen.push(`${sessionId} ${dataKey}`);
        return value.replace('one', 'uno');
      }, {});
      expect(count).toBe(3);
      expect(seen.sort()).toEqual(
        [
          `s message:raw:${JSON.stringify([CHAT, CHAT, 'm1'])}`,
          `s message:raw:${JSON.stringify([CHAT, CHAT, 'm2'])}`,
          `s message:text:${JSON.stringify([CHAT, CHAT, 'm1'])}`,
        ].sort(),
      );
      expect((await store.readEvents()).map((e) => (e.type === 'message' ? e.text : undefined))).toEqual(['uno', null]);
    });

    const outgoing = (id: string, extra: Partial<OutgoingInput> = {}): OutgoingInput => ({
      id,
      to: CHAT,
      text: `outgoing ${id}`,
      ...extra,
    });
    const statusTrail = async (): Promise<string[]> =>
      (await store.readEvents()).flatMap((e) =>
        e.type === 'status' ? [`${e.id}:${e.status}${e.code ? `:${e.code}` : ''}`] : [],
      );

    it('hints its watchers when a message is queued and when events are appended, until they stop watching', async () => {
      const seen: string[] = [];
      const stop = store.watchChanges((change) => {
        if (change.session === 'hinted') seen.push(change.kind);
      });
      // PostgreSQL's hints come back through a listening connection of their own: give it time to listen.
      await until(async () => {
        await store.appendEvent('hinted', { type: 'state', state: 'paired' });
        return seen.includes('events');
      }, 'a hint for an appended event');
      await store.enqueueMessage('hinted', outgoing('h1'));
      await until(() => seen.includes('outbox'), 'a hint for a queued message');
      seen.length = 0;
      await store.storeIncoming('hinted', [message('h2')], { replay: false });
      await until(() => seen.includes('events'), 'a hint for a stored message');
      stop();
      seen.length = 0;
      await store.enqueueMessage('hinted', outgoing('h3'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(seen).toEqual([]);
    });

    it('queues outgoing messages and sends them one at a time, in the order they were accepted', async () => {
      const first = await store.enqueueMessage('s', outgoing('o1'));
      expect(first).toMatchObject({
        created: true,
        message: { id: 'o1', session: 's', to: CHAT, text: 'outgoing o1', key: null, status: 'queued', code: null },
      });
      await store.enqueueMessage('s', outgoing('o2'));
      await store.enqueueMessage('other', outgoing('x1'));
      expect(await store.claimNextMessage('s')).toMatchObject({ id: 'o1', status: 'sending', text: 'outgoing o1' });
      // One in flight per session; other sessions are not held up.
      expect(await store.claimNextMessage('s')).toBeUndefined();
      expect(await store.claimNextMessage('other')).toMatchObject({ id: 'x1', status: 'sending' });
      expect(await store.markMessage('s', 'o1', 'sent')).toMatchObject({ id: 'o1', status: 'sent' });
      expect(await store.claimNextMessage('s')).toMatchObject({ id: 'o2', status: 'sending' });
      expect(await store.markMessage('s', 'o2', 'sent')).toMatchObject({ status: 'sent' });
      expect(await store.claimNextMessage('s')).toBeUndefined();
      const [event] = (await store.readEvents({ sessions: ['s'] })).filter((e) => e.type === 'status');
      expect(event).toEqual({
        cursor: expect.any(String),
        session: 's',
        at: expect.any(String),
        type: 'status',
        id: 'o1',
        chat: CHAT,
        status: 'queued',
        code: null,
      });
      expect(await statusTrail()).toEqual([
        'o1:queued',
        'o2:queued',
        'x1:queued',
        'o1:sending',
        'x1:sending',
        'o1:sent',
        'o2:sending',
        'o2:sent',
      ]);
    });

    it('moves a status only forward, keeps rejected final, and appends an event only for real changes', async () => {
      await store.enqueueMessage('s', outgoing('o1'));
      // Never sent: no server ack or receipt can apply to it.
      expect(await store.markMessage('s', 'o1', 'sent')).toMatchObject({ status: 'queued' });
      await store.claimNextMessage('s');
      expect(await store.markMessage('s', 'o1', 'read')).toMatchObject({ status: 'read' });
      // A DELIVERY_ACK or the server ack folded behind a READ (Utils/event-buffer.js) moves nothing back.
      expect(await store.markMessage('s', 'o1', 'delivered')).toMatchObject({ status: 'read' });
      expect(await store.markMessage('s', 'o1', 'sent')).toMatchObject({ status: 'read' });
      expect(await store.markMessage('s', 'o1', 'rejected', '463')).toMatchObject({ status: 'read', code: null });
      await store.enqueueMessage('s', outgoing('o2'));
      await store.claimNextMessage('s');
      expect(await store.markMessage('s', 'o2', 'rejected', '463')).toMatchObject({ status: 'rejected', code: '463' });
      expect(await store.markMessage('s', 'o2', 'sent')).toMatchObject({ status: 'rejected', code: '463' });
      expect(await store.markMessage('s', 'missing', 'sent')).toBeUndefined();
      expect(await statusTrail()).toEqual([
        'o1:queued',
        'o1:sending',
        'o1:read',
        'o2:queued',
        'o2:sending',
        'o2:rejected:463',
      ]);
      // A rejected message is never claimed again.
      expect(await store.claimNextMessage('s')).toBeUndefined();
    });

    it('returns the existing message for a repeated key, per session', async () => {
      const a = await store.enqueueMessage('s', outgoing('o1', { key: 'deploy-42' }));
      const again = await store.enqueueMessage('s', outgoing('o2', { key: 'deploy-42', text: 'different' }));
      expect(again).toMatchObject({ created: false, message: { id: 'o1', key: 'deploy-42', text: 'outgoing o1' } });
      expect(a.message.id).toBe('o1');
      expect(await store.enqueueMessage('t', outgoing('o3', { key: 'deploy-42' }))).toMatchObject({ created: true });
      expect(await store.getOutgoing('s', 'o2')).toBeUndefined();
      const concurrent = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.enqueueMessage('s', outgoing(`c${i}`, { key: 'same' }))),
      );
      expect(concurrent.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(concurrent.map((r) => r.message.id)).size).toBe(1);
    });

    it('cancels a message only while it is still queued', async () => {
      await store.enqueueMessage('s', outgoing('o1'));
      await store.enqueueMessage('s', outgoing('o2'));
      expect(await store.cancelMessage('s', 'o2')).toMatchObject({ status: 'cancelled' });
      await store.claimNextMessage('s');
      expect(await store.cancelMessage('s', 'o1')).toMatchObject({ status: 'sending' });
      await store.markMessage('s', 'o1', 'sent');
      // A cancelled message is never claimed.
      expect(await store.claimNextMessage('s')).toBeUndefined();
      expect(await store.markMessage('s', 'o2', 'sending')).toMatchObject({ status: 'cancelled' });
    });

    it('turns an ambiguous send into unknown and claims it again first, with the same id', async () => {
      await store.enqueueMessage('s', outgoing('o1'));
      await store.enqueueMessage('s', outgoing('o2'));
      await store.claimNextMessage('s');
      expect(await store.abandonInFlight('s')).toBe(1);
      expect(await store.getOutgoing('s', 'o1')).toMatchObject({ status: 'unknown' });
      expect(await store.outboxCounts()).toEqual(new Map([['s', { queued: 1, unknown: 1 }]]));
      expect(await store.claimNextMessage('s')).toMatchObject({ id: 'o1', status: 'sending' });
      expect(await store.abandonInFlight('s')).toBe(1);
      // The ack or a receipt for the first write can still arrive: unknown moves on to sent.
      expect(await store.markMessage('s', 'o1', 'delivered')).toMatchObject({ status: 'delivered' });
      expect(await store.abandonInFlight('s')).toBe(0);
      expect(await store.claimNextMessage('s')).toMatchObject({ id: 'o2' });
      await store.markMessage('s', 'o2', 'unknown');
      expect(await store.outboxCounts()).toEqual(new Map([['s', { queued: 0, unknown: 1 }]]));
      expect(await store.outboxTotals()).toEqual(
        new Map([
          ['delivered', 1],
          ['unknown', 1],
        ]),
      );
    });

    it('fences claims by the lease: a deposed owner gets E_LEASE_LOST and claims nothing', async () => {
      await store.createSession('s', null);
      await store.enqueueMessage('s', outgoing('o1'));
      expect((await store.acquireLease('s', owner('old'), 60_000, false)).acquired).toBe(true);
      expect((await store.acquireLease('s', owner('new'), 60_000, true)).acquired).toBe(true);
      await expect(store.claimNextMessage('s', { fence: 'old' })).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
      await expect(store.abandonInFlight('s', { fence: 'old' })).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
      expect(await store.getOutgoing('s', 'o1')).toMatchObject({ status: 'queued' });
      expect(await store.claimNextMessage('s', { fence: 'new' })).toMatchObject({ id: 'o1', status: 'sending' });
      expect(await store.abandonInFlight('s', { fence: 'new' })).toBe(1);
    });

    it('seals outgoing text, counts it as a value, rewrites it, and deletes it with its session', async () => {
      expect(await store.hasValues()).toBe(false);
      await store.enqueueMessage('s', outgoing('o1', { text: 'the outgoing secret' }));
      expect(await store.hasValues()).toBe(true);
      store = await h.reopen();
      expect(await store.getOutgoing('s', 'o1')).toMatchObject({ text: 'the outgoing secret' });
      const [row] = await h.sql(`SELECT text FROM wa_outbox`);
      if (options.opaqueValues) {
        expect(String(row!.text)).toMatch(/^wa1:/);
        await store.enqueueMessage('s', outgoing('o2'));
        await h.sql(`UPDATE wa_outbox SET text = ? WHERE message_id = 'o2'`, [row!.text]);
        await expect(store.getOutgoing('s', 'o2')).rejects.toMatchObject({ code: 'E_UNSEAL' });
        await h.sql(`DELETE FROM wa_outbox WHERE message_id = 'o2'`);
      } else {
        expect(row!.text).toBe('the outgoing secret');
      }
      const seen: string[] = [];
      expect(
        await store.rewriteAll((value, sessionId, dataKey) => {
          seen.push(`${sessionId} ${dataKey}`);
          return value.replace('secret', 'message');
        }, {}),
      ).toBe(1);
      expect(seen).toEqual([`s outbox:text:${JSON.stringify(['o1'])}`]);
      expect(await store.getOutgoing('s', 'o1')).toMatchObject({ text: 'the outgoing message' });
      await store.createSession('s', null);
      expect(await store.deleteSession('s')).toBe(true);
      expect(await store.getOutgoing('s', 'o1')).toBeUndefined();
      expect(await h.sql(`SELECT message_id FROM wa_outbox`)).toEqual([]);
    });

    it('prunes finished outgoing messages older than the retention, never pending ones', async () => {
      await store.enqueueMessage('s', outgoing('done'));
      await store.claimNextMessage('s');
      await store.markMessage('s', 'done', 'sent');
      await store.enqueueMessage('s', outgoing('waiting'));
      await h.sql(`UPDATE wa_outbox SET updated_at = '2000-01-01T00:00:00.000Z'`);
      await store.pruneMessages(24 * 3600 * 1000);
      expect((await h.sql(`SELECT message_id FROM wa_outbox`)).map((r) => r.message_id)).toEqual(['waiting']);
    });

    describe('webhook positions', () => {
      const fence = { fence: 'owner-a' };
      const leased = async (id: string, ownerId = 'owner-a'): Promise<void> => {
        await store.createSession(id, null).catch(() => undefined);
        expect((await store.acquireLease(id, owner(ownerId), 60_000, true)).acquired).toBe(true);
      };
      const cursorsOf = async (session: string): Promise<string[]> =>
        (await store.readEvents({ sessions: [session] })).map((e) => e.cursor);

      it('starts without a row, moves forward on delivered, skipped and dead, and counts failures of the current event only', async () => {
        await leased('s');
        await store.storeIncoming('s', [message('m1'), message('m2'), message('m3'), message('m4')], {
          replay: false,
        });
        const [c1, c2, c3, c4] = await cursorsOf('s');
        expect(await store.webhookPosition('s')).toBeUndefined();

        const failed = await store.recordWebhookDelivery(
          's',
          c1!,
          { result: 'failed', error: 'HTTP 500', at: 1000, nextAt: 2000 },
          fence,
        );
        expect(failed).toMatchObject({
          session: 's',
          cursor: '0',
          failingCursor: c1,
          attempts: 1,
          firstFailedAt: 1000,
          nextAt: 2000,
          lastError: 'HTTP 500',
          delivered: 0,
          dead: 0,
        });
        // A second failure keeps the first failure time: the event dies a max age after it.
        await store.recordWebhookDelivery(
          's',
          c1!,
          { result: 'failed', error: 'timed out', at: 3000, nextAt: 7000 },
          fence,
        );
        expect(await store.webhookPosition('s')).toMatchObject({
          cursor: '0',
          failingCursor: c1,
          attempts: 2,
          firstFailedAt: 1000,
          nextAt: 7000,
          lastError: 'timed out',
        });

        const delivered = await store.recordWebhookDelivery('s', c1!, { result: 'delivered' }, fence);
        expect(delivered).toMatchObject({
          cursor: c1,
          failingCursor: null,
          attempts: 0,
          firstFailedAt: null,
          nextAt: null,
          lastError: 'timed out', // kept for wa status; attempts 0 says the current event is fine
          delivered: 1,
          dead: 0,
        });
        expect(Date.parse(delivered.updatedAt)).not.toBeNaN();

        // Failures of another event than the one recorded start afresh.
        await store.recordWebhookDelivery(
          's',
          c2!,
          { result: 'failed', error: 'HTTP 502', at: 5000, nextAt: 6000 },
          fence,
        );
        await store.recordWebhookDelivery(
          's',
          c3!,
          { result: 'failed', error: 'HTTP 503', at: 9000, nextAt: 9500 },
          fence,
        );
        expect(await store.webhookPosition('s')).toMatchObject({ failingCursor: c3, attempts: 1, firstFailedAt: 9000 });

        await store.recordWebhookDelivery('s', c2!, { result: 'skipped' }, fence);
        const dead = await store.recordWebhookDelivery('s', c3!, { result: 'dead', error: 'HTTP 503' }, fence);
        expect(dead).toMatchObject({ cursor: c3, attempts: 0, failingCursor: null, delivered: 1, dead: 1 });

        // Never backwards: a late or repeated outcome at or before the position changes nothing.
        for (const c of [c1!, c2!, c3!]) {
          expect(await store.recordWebhookDelivery('s', c, { result: 'delivered' }, fence)).toEqual(dead);
          expect(
            await store.recordWebhookDelivery('s', c, { result: 'failed', error: 'x', at: 1, nextAt: 2 }, fence),
          ).toEqual(dead);
        }
        expect(await store.webhookPosition('s')).toEqual(dead);
        await store.recordWebhookDelivery('s', c4!, { result: 'delivered' }, fence);

        // Kept across reopen, per session.
        store = await h.reopen();
        expect(await store.webhookPosition('s')).toMatchObject({ cursor: c4, delivered: 2, dead: 1 });
        expect(await store.webhookPosition('other')).toBeUndefined();
      });

      it('fences positions by the lease: only the live owner moves one; a deposed owner gets E_LEASE_LOST and changes nothing', async () => {
        await store.storeIncoming('s', [message('m1'), message('m2')], { replay: false });
        const [c1, c2] = await cursorsOf('s');
        await store.createSession('s', null);
        // No lease at all: nobody may record fenced.
        await expect(store.recordWebhookDelivery('s', c1!, { result: 'delivered' }, fence)).rejects.toMatchObject({
          code: 'E_LEASE_LOST',
          exitCode: 6,
        });
        await leased('s');
        await store.recordWebhookDelivery('s', c1!, { result: 'delivered' }, fence);
        await leased('s', 'owner-b'); // a takeover
        await expect(store.recordWebhookDelivery('s', c2!, { result: 'delivered' }, fence)).rejects.toMatchObject({
          code: 'E_LEASE_LOST',
        });
        await expect(
          store.recordWebhookDelivery('s', c2!, { result: 'failed', error: 'HTTP 500', at: 1, nextAt: 2 }, fence),
        ).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
        expect(await store.webhookPosition('s')).toMatchObject({ cursor: c1, delivered: 1, attempts: 0 });
        // The new owner goes on from the stored position.
        await store.recordWebhookDelivery('s', c2!, { result: 'delivered' }, { fence: 'owner-b' });
        expect(await store.webhookPosition('s')).toMatchObject({ cursor: c2, delivered: 2 });
        // An expired lease fences out even its own owner.
        await store.acquireLease('s', owner('owner-b'), -1, true);
        await store.storeIncoming('s', [message('m3')], { replay: false });
        const c3 = (await cursorsOf('s'))[2]!;
        await expect(
          store.recordWebhookDelivery('s', c3, { result: 'delivered' }, { fence: 'owner-b' }),
        ).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
      });

      it('counts pending events after each position by type in one read, and deletes the position with its session', async () => {
        for (const id of ['a', 'b', 'c']) await leased(id);
        await store.storeIncoming('a', [message('a1'), message('a2')], { replay: false });
        await store.appendEvent('a', { type: 'connection', connection: 'open', code: null, reason: null });
        await store.storeIncoming('b', [message('b1')], { replay: false });
        await store.enqueueMessage('b', { id: 'o1', to: CHAT, text: 'hi' }); // a status event
        const [a1] = await cursorsOf('a');
        await store.recordWebhookDelivery('a', a1!, { result: 'delivered' }, fence);
        const [b1] = await cursorsOf('b');
        await store.recordWebhookDelivery(
          'b',
          b1!,
          { result: 'failed', error: 'HTTP 500', at: 1000, nextAt: 61_000 },
          fence,
        );

        // Only sessions with a position row, unless every session is asked for.
        const tracked = await store.webhookStats();
        expect([...tracked.keys()]).toEqual(['a', 'b']);
        expect(tracked.get('a')).toEqual({
          pending: 2, // a2 and the connection event
          dead: 0,
          delivered: 1,
          attempts: 0,
          nextAttemptAt: null,
          lastError: null,
          tracked: true,
        });
        expect(tracked.get('b')).toEqual({
          pending: 2, // b1 (failing) and the status event
          dead: 0,
          delivered: 0,
          attempts: 1,
          nextAttemptAt: new Date(61_000).toISOString(),
          lastError: 'HTTP 500',
          tracked: true,
        });
        const all = await store.webhookStats({ allSessions: true, types: ['message'] });
        expect([...all.keys()]).toEqual(['a', 'b', 'c']);
        expect(all.get('a')).toMatchObject({ pending: 1 });
        expect(all.get('b')).toMatchObject({ pending: 1 });
        // A session without a row has everything kept pending (delivery starts at its oldest event).
        expect(all.get('c')).toEqual({
          pending: 0,
          dead: 0,
          delivered: 0,
          attempts: 0,
          nextAttemptAt: null,
          lastError: null,
          tracked: false,
        });
        await store.storeIncoming('c', [message('c1')], { replay: false });
        expect((await store.webhookStats({ allSessions: true })).get('c')).toMatchObject({
          pending: 1,
          tracked: false,
        });
        expect((await store.webhookStats({ types: ['state', 'status'] })).get('b')).toMatchObject({ pending: 1 });

        expect(await store.deleteSession('a')).toBe(true);
        expect(await store.webhookPosition('a')).toBeUndefined();
        expect([...(await store.webhookStats()).keys()]).toEqual(['b']);
      });

      it('names the sessions with events after a cursor, for waking their webhook workers', async () => {
        expect(await store.sessionsWithEventsAfter('0')).toEqual([]);
        await store.storeIncoming('a', [message('a1')], { replay: false });
        const last = await store.lastCursor();
        await store.storeIncoming('b', [message('b1')], { replay: false });
        await store.appendEvent('c', { type: 'state', state: 'paired' });
        await store.storeIncoming('b', [message('b2')], { replay: false });
        expect((await store.sessionsWithEventsAfter(last)).sort()).toEqual(['b', 'c']);
        expect((await store.sessionsWithEventsAfter('0')).sort()).toEqual(['a', 'b', 'c']);
        expect(await store.sessionsWithEventsAfter(await store.lastCursor())).toEqual([]);
      });
    });

    it('serves concurrent reads and writes without losing any', async () => {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.writeValues('s', [[`session-${i}`, `"${i}"`]]).then(() => store.readValues('s', [`session-${i}`])),
        ),
      );
      const all = await store.readAll('s');
      expect(all).toHaveLength(50);
    });
  });
}
