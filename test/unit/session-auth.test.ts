import { describe, expect, it } from 'vitest';
import { SessionAuth } from '../../src/session/session-auth.js';
import { storageError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { ManualClock } from '../helpers/manual-clock.js';

const storedCreds = async (store: SqliteStore): Promise<{ registrationId: number }> =>
  JSON.parse((await store.readCreds('bot'))!) as { registrationId: number };

describe('SessionAuth: failed creds writes', () => {
  it('tracks a failed creds write and, in the daemon, retries it with backoff, storing the newest creds', async () => {
    const store = new SqliteStore(':memory:');
    await store.createSession('bot', null);
    const clock = new ManualClock();
    const auth = await SessionAuth.open(store, 'bot', {
      deferCredsUntilPaired: false,
      retryCreds: { baseMs: 1000, capMs: 60_000, clock },
    });
    const writeCreds = store.writeCreds.bind(store);
    let failures = 2;
    store.writeCreds = (...args) =>
      failures-- > 0 ? Promise.reject(storageError('E_DB_BUSY', 'locked')) : writeCreds(...args);

    (auth.state.creds as { registrationId: number }).registrationId = 111;
    await expect(auth.saveCreds()).rejects.toMatchObject({ code: 'E_DB_BUSY' });
    expect(auth.credsWriteFailed).toBe(true);
    (auth.state.creds as { registrationId: number }).registrationId = 222; // changed in memory meanwhile: the retry writes the newest
    await clock.advance(1000); // first retry: fails again
    expect(auth.credsWriteFailed).toBe(true);
    await clock.advance(2000); // second retry, after double the wait: stored
    expect(auth.credsWriteFailed).toBe(false);
    expect((await storedCreds(store)).registrationId).toBe(222);
    await auth.close();
    expect(clock.pending).toBe(0);
    await store.close();
  });

  it('ensureCredsStored writes failed creds again, and throws E_CREDS_NOT_STORED (exit 5) when it cannot', async () => {
    const store = new SqliteStore(':memory:');
    await store.createSession('bot', null);
    const auth = await SessionAuth.open(store, 'bot', { deferCredsUntilPaired: false });
    const writeCreds = store.writeCreds.bind(store);
    let failures = 1;
    store.writeCreds = (...args) =>
      failures-- > 0 ? Promise.reject(storageError('E_DB_IO', 'disk I/O error')) : writeCreds(...args);
    (auth.state.creds as { registrationId: number }).registrationId = 333;
    await auth.saveCreds().catch(() => undefined);
    await auth.ensureCredsStored(3, 1);
    expect((await storedCreds(store)).registrationId).toBe(333);

    store.writeCreds = () => Promise.reject(storageError('E_DB_IO', 'disk I/O error'));
    await auth.saveCreds().catch(() => undefined);
    await expect(auth.ensureCredsStored(3, 1)).rejects.toMatchObject({ code: 'E_CREDS_NOT_STORED', exitCode: 5 });
    await auth.close();
    await store.close();
  });
});
