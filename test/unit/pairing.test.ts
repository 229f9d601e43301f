import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Pairings, type PairingEvent } from '../../src/daemon/pairing.js';
import { newOwner } from '../../src/session/lease.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { boom, scriptedFactory } from '../helpers/scripted-socket.js';

const until = async (condition: () => boolean, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('pairing inside the daemon (src/daemon/pairing.ts) on scripted sockets', () => {
  let store: SqliteStore;
  let sockets: ReturnType<typeof scriptedFactory>;
  let paired: string[];
  let pairings: Pairings;
  const owner = newOwner('serve', 'test-host', process.pid);

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    sockets = scriptedFactory();
    paired = [];
    pairings = new Pairings({
      store,
      openSocket: sockets.openSocket,
      logger: pino({ level: 'silent' }),
      baileysLogger: pino({ level: 'silent' }),
      timing: { leaseTtlMs: 30_000, leaseRenewMs: 10_000, qrTimeoutMs: 0 },
      owner,
      onPaired: (id) => paired.push(id),
      timeoutMs: 60_000,
    });
    await store.createSession('bot', null);
  });
  afterEach(async () => {
    await pairings.stop();
    await store.close();
  });

  it('shows each QR (60 s, then 20 s), replays the current one to a late follower, and a cancel stores nothing and releases the lease', async () => {
    const started = Date.now();
    await pairings.start('bot', { method: 'qr' });
    expect(pairings.isPairing('bot')).toBe(true);
    await until(() => sockets.sockets.length === 1);
    expect((await store.getSession('bot'))?.lease?.ownerId).toBe(owner.ownerId);
    const early: PairingEvent[] = [];
    pairings.subscribe(
      'bot',
      (e) => early.push(e),
      () => undefined,
    );
    sockets.last().emit({ qr: 'QR-ONE' });
    sockets.last().emit({ qr: 'QR-TWO' });
    expect(early.map((e) => e.event)).toEqual(['qr', 'qr']);
    const [one, two] = early as Array<Extract<PairingEvent, { event: 'qr' }>>;
    expect(Date.parse(one!.expiresAt) - started).toBeGreaterThanOrEqual(59_000);
    expect(Date.parse(two!.expiresAt) - Date.now()).toBeLessThanOrEqual(20_000);
    expect(pairings.currentQr('bot')).toBe('QR-TWO');

    const late: PairingEvent[] = [];
    let ended = false;
    pairings.subscribe(
      'bot',
      (e) => late.push(e),
      () => (ended = true),
    );
    expect(late).toEqual([two]); // the QR on screen now, not the expired one

    await pairings.cancel('bot');
    expect(sockets.last().ended).toBe(true);
    expect(ended).toBe(true);
    expect(late.at(-1)).toMatchObject({ event: 'error', code: 'E_CANCELLED' });
    const session = await store.getSession('bot');
    expect(session?.state).toBe('unpaired');
    expect(session?.lease).toBeNull();
    expect(await store.readCreds('bot')).toBeUndefined();
    expect(pairings.isPairing('bot')).toBe(false);
    expect(pairings.currentQr('bot')).toBeUndefined();
    expect(paired).toEqual([]);
    await expect(pairings.cancel('bot')).rejects.toMatchObject({ code: 'E_NOT_PAIRING' });
  });

  it('after the phone accepted: the 515 restart logs in, the session is paired and handed over with the lease still ours', async () => {
    await pairings.start('bot', { method: 'qr' });
    await until(() => sockets.sockets.length === 1);
    const events: PairingEvent[] = [];
    pairings.subscribe(
      'bot',
      (e) => events.push(e),
      () => undefined,
    );
    sockets.last().emit({ qr: 'QR-ONE' });
    sockets.last().emit({ isNewLogin: true });
    await expect(pairings.cancel('bot')).rejects.toMatchObject({ code: 'E_PAIRING_FINISHING' });
    sockets.last().close(boom(515, 'restart required'));
    await until(() => sockets.sockets.length === 2);
    sockets.last().open();
    await until(() => paired.length === 1, 8000);
    expect(paired).toEqual(['bot']);
    expect(events.map((e) => e.event)).toEqual(['qr', 'paired', 'open']);
    const session = await store.getSession('bot');
    expect(session?.state).toBe('paired');
    expect(session?.lease?.ownerId).toBe(owner.ownerId); // not released: the supervisor takes it as its own
    expect(pairings.isPairing('bot')).toBe(false);
    expect(sockets.last().ended).toBe(true); // the pairing's socket is closed; the supervisor opens its own
  });

  it('refuses an unknown session, a paired one, one already being paired, and one another process holds', async () => {
    await expect(pairings.start('nope', { method: 'qr' })).rejects.toMatchObject({ code: 'E_SESSION_UNKNOWN' });
    await store.createSession('done', null);
    await store.updateSession('done', { state: 'paired' });
    await expect(pairings.start('done', { method: 'qr' })).rejects.toMatchObject({ code: 'E_SESSION_PAIRED' });
    await store.createSession('held', null);
    await store.acquireLease('held', newOwner('connect', 'elsewhere', 1), 30_000, false);
    await expect(pairings.start('held', { method: 'qr' })).rejects.toMatchObject({ code: 'E_BUSY' });
    expect(pairings.isPairing('held')).toBe(false);
    await pairings.start('bot', { method: 'qr' });
    await expect(pairings.start('bot', { method: 'qr' })).rejects.toMatchObject({ code: 'E_PAIRING_ACTIVE' });
  });
});
