import { afterEach, describe, expect, it } from 'vitest';
import { classifyOpenFailure } from '../../src/daemon/session-runner.js';
import { Supervisor } from '../../src/daemon/supervisor.js';
import { storageError, WaError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { TEST_TIMING as timing, scriptedSupervisor } from '../helpers/scripted-daemon.js';
import { scriptedFactory } from '../helpers/scripted-socket.js';

describe('opening a session: which failures stop it', () => {
  it.each<[string, unknown, string]>([
    ['a locked SQLite database', storageError('E_DB_BUSY', 'locked for 10 s'), 'retry'],
    ['an unreachable PostgreSQL', storageError('E_DB_UNREACHABLE', 'cannot reach PostgreSQL'), 'retry'],
    ['an I/O error', storageError('E_DB_IO', 'disk I/O error'), 'retry'],
    ['a timeout', Object.assign(new Error('timeout exceeded when trying to connect'), { code: 'ETIMEDOUT' }), 'retry'],
    ['corrupt creds', storageError('E_CORRUPT', "stored value 'creds' is not valid JSON"), 'stop'],
    ['a wrong secret', storageError('E_WRONG_SECRET', 'WA_SECRET does not open this database'), 'stop'],
    ['a value sealed by another key', storageError('E_UNSEAL', 'cannot unseal'), 'stop'],
    ['a lost lease', new WaError(6, 'E_LEASE_LOST', 'no longer holds its lease'), 'lease_lost'],
  ])('%s → %s', (_name, error, action) => {
    expect(classifyOpenFailure(error).action).toBe(action);
  });
});

describe('Supervisor: sessions whose stored state cannot be read', () => {
  let store: SqliteStore;
  let supervisor: Supervisor | undefined;
  afterEach(async () => {
    await supervisor?.stop();
    await store.close();
  });

  async function start(readCreds: SqliteStore['readCreds']) {
    store = new SqliteStore(':memory:');
    await store.createSession('bot', null);
    await store.updateSession('bot', { state: 'paired' });
    store.readCreds = readCreds;
    const clock = new ManualClock(Date.now());
    const factory = scriptedFactory();
    supervisor = scriptedSupervisor({ store, factory, clock });
    await supervisor.start();
    // The first open loads Baileys (real time, once per file); then only the manual clock moves.
    const settled = (): boolean =>
      factory.sockets.length > 0 || supervisor!.readiness().stopped.length > 0 || readFailures > 0;
    for (let i = 0; i < 200 && !settled(); i++) await new Promise((r) => setTimeout(r, 25));
    await clock.advance(0);
    return { clock, factory };
  }
  let readFailures = 0;

  it('retries a transient storage error with backoff, records it, and is not ready until the session opens', async () => {
    readFailures = 0;
    const { clock, factory } = await start(function (this: SqliteStore, id) {
      if (readFailures < 2) {
        readFailures++;
        return Promise.reject(storageError('E_DB_BUSY', 'the database stayed locked by another process for 10 s'));
      }
      return SqliteStore.prototype.readCreds.call(this, id);
    });
    expect(factory.sockets).toHaveLength(0);
    expect((await store.getSession('bot'))!.lastDisconnect).toMatchObject({
      code: null,
      reason: expect.stringContaining('locked') as unknown,
    });
    expect(supervisor!.readiness()).toMatchObject({ ready: false, notOpen: ['bot'] });
    await clock.advance(timing.backoffBaseMs * 2); // two attempts: under base + 2·base
    await clock.advance(timing.backoffBaseMs * 2);
    for (let i = 0; i < 100 && factory.sockets.length === 0; i++) await clock.advance(10);
    expect(factory.sockets).toHaveLength(1);
    factory.last().open();
    await clock.advance(0);
    expect(supervisor!.readiness()).toMatchObject({ ready: true, owned: 1, stopped: [] });
  });

  it('stops on corrupt data, records why, releases the lease, and /readyz reports it', async () => {
    readFailures = 0;
    const { clock, factory } = await start(() => {
      readFailures++;
      return Promise.reject(storageError('E_CORRUPT', "session 'bot': stored value 'creds' is not valid JSON"));
    });
    await clock.advance(timing.discoveryMs * 3);
    expect(factory.sockets).toHaveLength(0);
    expect(readFailures).toBe(1);
    const session = (await store.getSession('bot'))!;
    expect(session.lastDisconnect?.reason).toMatch(/not valid JSON/);
    expect(session.lease).toBeNull();
    expect(supervisor!.readiness()).toMatchObject({
      ready: false,
      owned: 0,
      stopped: [{ id: 'bot', reason: expect.stringMatching(/not valid JSON/) as unknown }],
    });
  });

  it('is not ready while its leases cannot be renewed', async () => {
    readFailures = 0;
    const { clock, factory } = await start(SqliteStore.prototype.readCreds);
    factory.last().open();
    await clock.advance(0);
    expect(supervisor!.readiness().ready).toBe(true);
    store.renewLeases = () => Promise.reject(new Error('database unreachable'));
    await clock.advance(timing.leaseRenewMs);
    expect(supervisor!.readiness()).toMatchObject({ ready: false, leasesRenewed: false });
  });
});
