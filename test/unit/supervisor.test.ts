import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Supervisor, WAITING_POLL_MS } from '../../src/daemon/supervisor.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { TEST_OWNER as owner, TEST_TIMING as timing, scriptedSupervisor } from '../helpers/scripted-daemon.js';
import { scriptedFactory } from '../helpers/scripted-socket.js';

describe('Supervisor on scripted sockets and a manual clock', () => {
  let store: SqliteStore;
  let clock: ManualClock;
  let factory: ReturnType<typeof scriptedFactory>;
  let supervisor: Supervisor;

  const waitForSockets = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && factory.sockets.length < n; i++) {
      await new Promise((r) => setTimeout(r, 25));
      await clock.advance(1);
    }
  };

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    for (const id of ['a', 'b']) {
      await store.createSession(id, null);
      await store.updateSession(id, { state: 'paired' });
    }
    await store.createSession('new', null); // unpaired: never served
    clock = new ManualClock(Date.now()); // leases expire by the database's clock, which is real time
    factory = scriptedFactory();
    supervisor = scriptedSupervisor({ store, factory, clock });
    await supervisor.start();
    await waitForSockets(2);
  });
  afterEach(async () => {
    await supervisor.stop();
    await store.close();
  });

  it('takes the lease of every paired session and connects each once', async () => {
    expect(factory.sockets).toHaveLength(2);
    expect(
      supervisor
        .owned()
        .map((s) => s.id)
        .sort(),
    ).toEqual(['a', 'b']);
    for (const id of ['a', 'b']) expect((await store.getSession(id))!.lease?.ownerId).toBe(owner.ownerId);
    expect((await store.getSession('new'))!.lease).toBeNull();
    await clock.advance(timing.discoveryMs * 3);
    expect(factory.sockets).toHaveLength(2); // discovery never starts a second runner for an owned session
  });

  it('closes a session quietly when its lease was taken over, and does not take it back', async () => {
    factory.sockets.forEach((s) => s.open());
    await clock.advance(0);
    await store.acquireLease('a', { ownerId: 'connect-other', host: 'h', pid: 2 }, timing.leaseTtlMs, true);
    await clock.advance(timing.leaseRenewMs);
    expect(supervisor.owned().map((s) => s.id)).toEqual(['b']);
    const closed = factory.sockets.filter((s) => s.ended);
    expect(closed).toHaveLength(1);
    await clock.advance(timing.discoveryMs * 2);
    expect(factory.sockets).toHaveLength(2);
    expect((await store.getSession('a'))!.lease?.ownerId).toBe('connect-other');
  });

  it('fences itself when leases cannot be renewed for TTL minus one renewal', async () => {
    factory.sockets.forEach((s) => s.open());
    store.renewLeases = () => Promise.reject(new Error('database unreachable'));
    await clock.advance(timing.leaseRenewMs); // one failed renewal: 10 s since the last good one, below TTL − renewal
    expect(supervisor.owned()).toHaveLength(2);
    await clock.advance(timing.leaseRenewMs); // 20 s: the lease may expire before the next tick
    expect(supervisor.owned()).toHaveLength(0);
    expect(factory.sockets.every((s) => s.ended)).toBe(true);
  });

  it('on stop closes every socket and releases every lease', async () => {
    await supervisor.stop();
    expect(factory.sockets.every((s) => s.ended)).toBe(true);
    for (const id of ['a', 'b']) expect((await store.getSession(id))!.lease).toBeNull();
    expect(clock.pending).toBe(0);
  });

  it('after an outage keeps the sessions discovery reopened: an acquisition counts as a renewal', async () => {
    factory.sockets.forEach((s) => s.open());
    const { renewLeases, listSessions } = store;
    const down = () => Promise.reject(new Error('database unreachable'));
    store.renewLeases = down;
    store.listSessions = down;
    await clock.advance(timing.leaseTtlMs - timing.leaseRenewMs); // 20 s without a renewal: fenced
    expect(supervisor.owned()).toHaveLength(0);
    store.renewLeases = renewLeases;
    store.listSessions = listSessions;
    await clock.advance(timing.discoveryMs); // t = 25 s: discovery takes both again
    expect(supervisor.owned()).toHaveLength(2);
    await clock.advance(timing.leaseRenewMs); // t = 35 s: the first renewal tick since the outage
    expect(supervisor.owned()).toHaveLength(2);
    expect(factory.sockets).toHaveLength(4);
  });
});

describe('Supervisor during an overlapping deploy (another live owner holds the sessions)', () => {
  const old = { ownerId: 'serve-old-deploy', host: 'old-host', pid: 7 };
  let store: SqliteStore;
  let clock: ManualClock;
  let factory: ReturnType<typeof scriptedFactory>;
  let supervisor: Supervisor;
  let lines: Array<Record<string, unknown>>;

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    for (const id of ['a', 'b']) {
      await store.createSession(id, null);
      await store.updateSession(id, { state: 'paired' });
      await store.acquireLease(id, old, timing.leaseTtlMs, false); // real-time TTL: 30 s, longer than any test
    }
    clock = new ManualClock(Date.now());
    factory = scriptedFactory();
    lines = [];
    const captured = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    supervisor = scriptedSupervisor({ store, factory, clock, logger: captured });
    await supervisor.start();
  });
  afterEach(async () => {
    await supervisor.stop();
    await store.close();
  });

  const waitLines = (id: string) => lines.filter((l) => l.session === id && String(l.msg).startsWith('waiting for'));

  it('waits for them: logged once each, listed as waiting, ready (knowingly waiting), no socket opened', async () => {
    await clock.advance(timing.discoveryMs * 3); // 15 polls and 3 discovery rounds
    expect(factory.sockets).toHaveLength(0);
    expect(supervisor.owned()).toEqual([]);
    expect(
      supervisor
        .waiting()
        .map((w) => [w.id, w.owner.ownerId])
        .sort(),
    ).toEqual([
      ['a', old.ownerId],
      ['b', old.ownerId],
    ]);
    for (const id of ['a', 'b']) {
      expect(waitLines(id)).toHaveLength(1);
      expect(waitLines(id)[0]!.msg).toBe(`waiting for ${old.ownerId} (pid 7 on old-host) to release the session`);
    }
    const readiness = supervisor.readiness();
    expect(readiness).toMatchObject({ ready: true, waiting: ['a', 'b'], untaken: [], owned: 0 });
  });

  it('takes a lease at once from a holder that is provably gone (crashed on this host), never from a live one', async () => {
    await supervisor.stop();
    const crashed = { ownerId: 'library-crashed', host: 'h#id:1', pid: 99 };
    await store.acquireLease('a', crashed, timing.leaseTtlMs, true);
    supervisor = scriptedSupervisor({
      store,
      factory,
      clock,
      logger: pino({ level: 'silent' }),
      holderIsGone: (lease) => lease.ownerId === crashed.ownerId,
    });
    await supervisor.start();
    expect(supervisor.owned().map((s) => s.id)).toEqual(['a']); // the first round, not after the TTL
    expect(supervisor.waiting().map((w) => w.id)).toEqual(['b']); // the live old deployment is waited for
    expect((await store.getSession('a'))?.lease?.ownerId).toBe(owner.ownerId);
  });

  it('reads only the waited-for sessions each second, not the whole registry (which lists only per discovery round)', async () => {
    const listSessions = vi.spyOn(store, 'listSessions');
    const getSession = vi.spyOn(store, 'getSession');
    await clock.advance(timing.discoveryMs + 100); // past a round
    listSessions.mockClear();
    getSession.mockClear();
    await clock.advance(WAITING_POLL_MS * 3); // three polls, no discovery round
    expect(listSessions).not.toHaveBeenCalled();
    expect(getSession.mock.calls.map(([id]) => id).sort()).toEqual(['a', 'a', 'a', 'b', 'b', 'b']);
  });

  it('takes each session within a second of its release (the 1 s poll, not the 5 s discovery round)', async () => {
    await clock.advance(timing.discoveryMs + 100); // just past a discovery round: the next is 5 s away
    await store.releaseLease('a', old.ownerId);
    await clock.advance(WAITING_POLL_MS);
    expect(supervisor.owned().map((s) => s.id)).toEqual(['a']);
    expect(factory.sockets).toHaveLength(1);
    expect(supervisor.waiting().map((w) => w.id)).toEqual(['b']);
    expect(lines.find((l) => l.msg === 'took session' && l.session === 'a')).toMatchObject({
      waitedFor: old.ownerId,
    });
    factory.last().open();
    await clock.advance(0);
    expect(supervisor.readiness().ready).toBe(true); // a open, b knowingly waited for

    await store.releaseLease('b', old.ownerId);
    await clock.advance(WAITING_POLL_MS);
    expect(
      supervisor
        .owned()
        .map((s) => s.id)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(supervisor.waiting()).toEqual([]);
    expect(waitLines('a')).toHaveLength(1); // never logged again
  });

  it('a new owner of a waited-for session is logged once more (the wait is for someone else now)', async () => {
    await clock.advance(WAITING_POLL_MS);
    const other = { ownerId: 'connect-someone', host: 'h', pid: 9 };
    await store.acquireLease('a', other, timing.leaseTtlMs, true);
    await clock.advance(WAITING_POLL_MS * 3);
    expect(waitLines('a').map((l) => (l.owner as { ownerId: string }).ownerId)).toEqual([old.ownerId, other.ownerId]);
  });
});

describe('Supervisor stop: each lease released the moment its session is closed', () => {
  it('frees a quick session while a slow one is still closing', async () => {
    const store = new SqliteStore(':memory:');
    for (const id of ['quick', 'slow']) {
      await store.createSession(id, null);
      await store.updateSession(id, { state: 'paired' });
    }
    const clock = new ManualClock(Date.now());
    const factory = scriptedFactory();
    const supervisor = scriptedSupervisor({ store, factory, clock });
    await supervisor.start();
    for (let i = 0; i < 200 && factory.sockets.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 25));
      await clock.advance(1);
    }
    factory.sockets.forEach((s) => s.open());
    await clock.advance(0);
    // One socket takes its time to close (a peer slow to answer the close handshake).
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    const slowSocket = factory.sockets[0]!;
    const end = slowSocket.end.bind(slowSocket);
    slowSocket.end = async () => {
      await held;
      return end();
    };
    const stopping = supervisor.stop();
    for (let i = 0; i < 20; i++) await clock.advance(10);
    const leases = await Promise.all(['quick', 'slow'].map(async (id) => (await store.getSession(id))!.lease));
    // One session is closed and already free; the other is still closing and still ours.
    expect(leases.filter((l) => l === null)).toHaveLength(1);
    expect(leases.filter((l) => l?.ownerId === owner.ownerId)).toHaveLength(1);
    finish();
    await stopping;
    for (const id of ['quick', 'slow']) expect((await store.getSession(id))!.lease).toBeNull();
    await store.close();
  });
});
