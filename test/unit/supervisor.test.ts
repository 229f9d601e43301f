import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TIMING, type Timing } from '../../src/config.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Supervisor } from '../../src/daemon/supervisor.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { scriptedFactory } from '../helpers/scripted-socket.js';

const timing: Timing = { ...DEFAULT_TIMING, connectsPerSecond: 1000 };
const logger = pino({ level: 'silent' });
const owner = { ownerId: 'serve-test', host: 'test-host', pid: 1 };

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
    supervisor = new Supervisor({
      store,
      openSocket: factory.openSocket,
      logger,
      baileysLogger: logger,
      timing,
      metrics: new Metrics(),
      clock,
      owner,
      only: [],
    });
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
