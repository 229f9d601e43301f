import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectLimiter } from '../../src/daemon/backoff.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { SessionRunner } from '../../src/daemon/session-runner.js';
import type { WebhookDispatcher } from '../../src/daemon/webhooks.js';
import type { Disconnect } from '../../src/session/disconnect.js';
import type { SessionAuth } from '../../src/session/session-auth.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { TEST_OWNER as owner, TEST_TIMING as timing, silentLogger as logger } from '../helpers/scripted-daemon.js';
import { boom, scriptedFactory } from '../helpers/scripted-socket.js';

describe('SessionRunner on a scripted socket and a manual clock', () => {
  let store: SqliteStore;
  let clock: ManualClock;
  let factory: ReturnType<typeof scriptedFactory>;
  let stopped: Disconnect[];
  let metrics: Metrics;
  let runner: SessionRunner;
  let limiter: ConnectLimiter;
  /** The auth state of each socket made, as the runner handed it over. */
  let auths: SessionAuth[];

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    await store.createSession('bot', null);
    await store.updateSession('bot', { state: 'paired' });
    // Leases expire by the database's clock (real time); 30 s is plenty for one test.
    await store.acquireLease('bot', owner, timing.leaseTtlMs, false);
    clock = new ManualClock();
    factory = scriptedFactory();
    auths = [];
    stopped = [];
    metrics = new Metrics();
    runner = new SessionRunner({
      store,
      openSocket: (auth, log) => {
        auths.push(auth);
        return factory.openSocket(auth, log);
      },
      ownerId: owner.ownerId,
      logger,
      baileysLogger: logger,
      timing,
      metrics,
      clock,
      id: 'bot',
      limiter: (limiter = new ConnectLimiter(timing.connectsPerSecond, clock)),
      onStopped: (_id, disconnect) => void stopped.push(disconnect),
    });
    runner.start();
    // The first open loads Baileys' initAuthCreds (real time, once per file); then only the manual clock moves.
    for (let i = 0; i < 200 && factory.sockets.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await clock.advance(0);
  });
  afterEach(async () => {
    await runner.stop();
    await store.close();
  });

  const session = async () => (await store.getSession('bot'))!;

  it('records open, then on a drop reconnects after a full-jitter backoff, never stopping', async () => {
    expect(factory.sockets).toHaveLength(1);
    expect((await session()).connection).toBe('connecting');
    factory.last().open();
    await clock.advance(0);
    expect(runner.connection).toBe('open');
    expect(await session()).toMatchObject({ connection: 'open', lastConnectedAt: new Date(clock.now()).toISOString() });

    factory.last().close(boom(428, 'Connection Closed'));
    await clock.advance(0);
    expect(await session()).toMatchObject({ connection: 'closed', lastDisconnect: { code: 428 }, state: 'paired' });
    // attempt 0: a delay in [0, base); the base is 1 s
    await clock.advance(timing.backoffBaseMs);
    expect(factory.sockets).toHaveLength(2);
    expect(stopped).toEqual([]);
  });

  it('on 429 (rate-overlimit) waits at least a minute, doubling, and slows the shared pacing to 1/s', async () => {
    factory.last().open();
    await clock.advance(0);
    factory.last().close(boom(429, 'rate-overlimit'));
    await clock.advance(0);
    expect(limiter.perSecond).toBe(1); // every session's connects, not only this one's
    await clock.advance(59_999);
    expect(factory.sockets).toHaveLength(1);
    await clock.advance(timing.backoffBaseMs + 1); // plus the full-jitter draw of attempt 0
    expect(factory.sockets).toHaveLength(2);
    factory.last().close(boom(429, 'rate-overlimit')); // again, without an open in between: two minutes
    await clock.advance(119_999);
    expect(factory.sockets).toHaveLength(2);
    await clock.advance(2 * timing.backoffBaseMs + 1);
    expect(factory.sockets).toHaveLength(3);
    expect(stopped).toEqual([]);
  });

  it('reconnects at once on 515 (restart required)', async () => {
    factory.last().close(boom(515, 'Stream Errored (restart required)'));
    await clock.advance(5); // the connect pacing's 1 ms slot, no backoff
    expect(factory.sockets).toHaveLength(2);
  });

  it.each([
    [401, 'logged_out'],
    [440, 'replaced'],
  ] as const)('stops on %i and records the session as %s, without reconnecting', async (code, state) => {
    factory.last().open();
    factory.last().close(boom(code));
    await clock.advance(120_000);
    expect(factory.sockets).toHaveLength(1);
    expect(stopped).toMatchObject([{ code, action: state }]);
    expect(await session()).toMatchObject({ state, connection: 'closed', lastDisconnect: { code } });
  });

  it('stops on a failed identity check with the detail of this very connection', async () => {
    factory.last().failure = "the server's certificate does not match its Noise static key";
    factory.last().close(boom(400, 'noise certificate signature invalid'));
    await clock.advance(120_000);
    expect(factory.sockets).toHaveLength(1);
    expect(stopped).toMatchObject([{ action: 'stop', detail: expect.stringContaining('Noise static key') as unknown }]);
  });

  it('tears down a connection that went silent for keep-alive + grace, then reconnects', async () => {
    factory.last().open();
    await clock.advance(timing.keepAliveMs);
    factory.last().frame(); // a ping keeps it alive
    await clock.advance(timing.keepAliveMs);
    expect(factory.last().terminated).toBe(false);
    await clock.advance(timing.livenessGraceMs * 1.5);
    expect(factory.sockets[0]!.terminated).toBe(true);
    expect((await session()).lastDisconnect).toMatchObject({
      code: 408,
      reason: expect.stringMatching(/no data/) as unknown,
    });
    await clock.advance(timing.backoffBaseMs);
    expect(factory.sockets).toHaveLength(2);
  });

  it('abandons a socket stuck connecting and retries', async () => {
    await clock.advance(timing.connectTimeoutMs);
    expect(factory.last().terminated).toBe(false);
    await clock.advance(timing.livenessGraceMs);
    expect(factory.sockets[0]!.terminated).toBe(true);
    expect((await session()).lastDisconnect).toMatchObject({
      code: 408,
      reason: expect.stringMatching(/stuck connecting/) as unknown,
    });
    await clock.advance(timing.backoffBaseMs);
    expect(factory.sockets).toHaveLength(2);
  });

  it('grows the backoff with each failed attempt and resets it after a long open', async () => {
    const gaps: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = factory.sockets.length;
      const started = clock.now();
      factory.last().close(boom(503));
      while (factory.sockets.length === before) await clock.advance(250);
      gaps.push(clock.now() - started);
    }
    // full jitter: attempt n waits < base·2^n (rounded up to the 250 ms steps of this test)
    gaps.forEach((gap, n) => expect(gap).toBeLessThanOrEqual(timing.backoffBaseMs * 2 ** n + 250));
    factory.last().open();
    for (let t = 0; t < timing.backoffResetMs; t += 10_000) {
      await clock.advance(10_000);
      factory.last().frame(); // WhatsApp's pings
    }
    const started = clock.now();
    factory.last().close(boom(503));
    while (factory.sockets.length === 7) await clock.advance(250);
    expect(clock.now() - started).toBeLessThanOrEqual(timing.backoffBaseMs + 250);
  });

  it('on stop ends the socket, writes closed, and leaves no timer behind', async () => {
    factory.last().open();
    await clock.advance(0);
    await runner.stop();
    expect(factory.last().ended).toBe(true);
    expect((await session()).connection).toBe('closed');
    expect(clock.pending).toBe(0);
  });

  it('after a lost lease stops without writing the session state (the new owner writes it)', async () => {
    factory.last().open();
    await clock.advance(0);
    await runner.stop({ leaseLost: true });
    expect(factory.last().ended).toBe(true);
    expect((await session()).connection).toBe('open');
  });

  it('stops quietly when a fenced auth write is refused (lease taken over): no retry, no state write', async () => {
    factory.last().open();
    await clock.advance(0);
    await store.acquireLease('bot', { ownerId: 'connect-other', host: 'h', pid: 2 }, timing.leaseTtlMs, true);
    const write = auths[0]!.state.keys.set({ 'sender-key-memory': { 'a@g.us': { 'b@s.whatsapp.net': true } } });
    await expect(write).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
    await clock.advance(120_000);
    expect(factory.last().ended).toBe(true);
    expect(factory.sockets).toHaveLength(1); // not retried
    expect(stopped).toMatchObject([{ action: 'closed', reason: 'lease lost' }]);
    expect(await session()).toMatchObject({ connection: 'open', state: 'paired' }); // the new owner writes it
    expect(clock.pending).toBe(0);
  });

  it.each([440, 401])(
    'on %i after another process took the lease, closes quietly: the state stays paired, nothing is written',
    async (code) => {
      factory.last().open();
      await clock.advance(0);
      await store.acquireLease('bot', { ownerId: 'connect-other', host: 'h', pid: 2 }, timing.leaseTtlMs, true);
      await store.updateSession('bot', { connection: 'connecting' }); // the new owner's write
      factory.last().close(boom(code));
      await clock.advance(120_000);
      expect(factory.sockets).toHaveLength(1);
      expect(stopped).toMatchObject([{ action: 'closed', reason: 'lease lost' }]);
      expect(await session()).toMatchObject({ state: 'paired', connection: 'connecting', lastDisconnect: null });
    },
  );

  it('backs off after three 515s in a row without an open, and reconnects at once again after an open', async () => {
    for (let i = 1; i <= 3; i++) {
      factory.last().close(boom(515, 'Stream Errored (restart required)'));
      await clock.advance(5);
      expect(factory.sockets).toHaveLength(i + 1);
    }
    factory.last().close(boom(515, 'Stream Errored (restart required)'));
    await clock.advance(5);
    expect(factory.sockets).toHaveLength(4); // the fourth waits
    await clock.advance(timing.backoffBaseMs);
    expect(factory.sockets).toHaveLength(5);
    factory.last().open();
    await clock.advance(0);
    factory.last().close(boom(515, 'Stream Errored (restart required)'));
    await clock.advance(5);
    expect(factory.sockets).toHaveLength(6); // an open in between: at once again
  });
});

describe('SessionRunner and webhooks', () => {
  let store: SqliteStore;
  let clock: ManualClock;
  let factory: ReturnType<typeof scriptedFactory>;
  let calls: string[];
  let runner: SessionRunner;

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    await store.createSession('bot', null);
    await store.updateSession('bot', { state: 'paired' });
    await store.acquireLease('bot', owner, timing.leaseTtlMs, false);
    clock = new ManualClock();
    factory = scriptedFactory();
    calls = [];
    // Stands in for WebhookDispatcher: records what the runner asks of it, and when.
    const webhooks = {
      deliver: (id: string, ownerId: string) => {
        calls.push(`deliver ${id} as ${ownerId}`);
        return {
          stop: (options?: { drainMs?: number }) => {
            calls.push(`stop${options?.drainMs ? ` draining ${options.drainMs} ms` : ''}`);
            return Promise.resolve();
          },
        };
      },
    } as unknown as WebhookDispatcher;
    runner = new SessionRunner({
      store,
      openSocket: factory.openSocket,
      ownerId: owner.ownerId,
      logger,
      baileysLogger: logger,
      timing,
      metrics: new Metrics(),
      clock,
      webhooks,
      id: 'bot',
      limiter: new ConnectLimiter(timing.connectsPerSecond, clock),
      onStopped: (_id, disconnect) => void calls.push(`stopped ${disconnect.action}`),
    });
    runner.start();
  });
  afterEach(async () => {
    await runner.stop();
    await store.close();
  });

  it('delivers from its start, connected or not, until it is stopped', async () => {
    expect(calls).toEqual([`deliver bot as ${owner.ownerId}`]); // before any socket opened
    await runner.stop();
    expect(calls).toEqual([`deliver bot as ${owner.ownerId}`, 'stop']);
  });

  it('when it stops itself (logged out), lets delivery drain before the lease is released', async () => {
    for (let i = 0; i < 200 && factory.sockets.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    factory.last().open();
    await clock.advance(0);
    factory.last().close(boom(401, 'Connection Failure'));
    await clock.advance(0);
    expect(calls.slice(1, 3)).toEqual([`stop draining ${timing.webhookTimeoutMs} ms`, 'stopped logged_out']);
  });
});
