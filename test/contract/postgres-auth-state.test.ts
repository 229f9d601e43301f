import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { useStoreAuthState } from '../../src/auth/auth-state.js';
import { usePostgresAuthState } from '../../src/index.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';

describe.skipIf(!pgUrl)('usePostgresAuthState', () => {
  let schema: Awaited<ReturnType<typeof freshSchema>>;
  beforeEach(async () => {
    schema = await freshSchema();
  });
  afterEach(() => schema.drop());

  it('is a drop-in auth state on PostgreSQL: creds and keys survive a reopen, clear() empties the session', async () => {
    const auth = await usePostgresAuthState(schema.url, 'bot');
    Object.assign(auth.state.creds, {
      me: { id: '15551234567:2@s.whatsapp.net', name: 'Ada' },
      account: { details: Buffer.alloc(8, 1) },
    });
    await auth.saveCreds();
    await auth.state.keys.set({
      'pre-key': { '1': { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) } },
      'lid-mapping': { '1555': '9876' },
    });
    await auth.close();

    const again = await usePostgresAuthState(schema.url, 'bot');
    expect(again.state.creds.me?.id).toBe('15551234567:2@s.whatsapp.net');
    expect(again.state.creds.noiseKey.private).toEqual(auth.state.creds.noiseKey.private);
    expect(await again.state.keys.get('pre-key', ['1', '2'])).toEqual({
      '1': { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) },
      '2': null,
    });
    await again.clear();
    expect(await again.state.keys.get('lid-mapping', ['1555'])).toEqual({ '1555': null });
    await again.close();
  });

  it('fences keys.set and saveCreds by the lease, and commits creds snapshots in call order', async () => {
    const store = await PostgresStore.open(schema.url);
    try {
      await store.createSession('bot', null);
      await store.acquireLease('bot', { ownerId: 'old', host: 'h', pid: 1 }, 30_000, false);
      const auth = await useStoreAuthState(store, 'bot', { fence: 'old' });
      // Many overlapping saves on a pool of connections: the last snapshot must be the one that stays.
      const saves: Array<Promise<void>> = [];
      for (let i = 1; i <= 30; i++) {
        auth.state.creds.nextPreKeyId = i;
        saves.push(auth.saveCreds());
      }
      await Promise.all(saves);
      expect((JSON.parse((await store.readCreds('bot'))!) as { nextPreKeyId: number }).nextPreKeyId).toBe(30);

      await store.acquireLease('bot', { ownerId: 'new', host: 'h', pid: 2 }, 30_000, true);
      auth.state.creds.nextPreKeyId = 1;
      await expect(auth.saveCreds()).rejects.toMatchObject({ code: 'E_LEASE_LOST', exitCode: 6 });
      await expect(
        auth.state.keys.set({ 'pre-key': { '5': { public: Buffer.alloc(32), private: Buffer.alloc(32) } } }),
      ).rejects.toMatchObject({ code: 'E_LEASE_LOST' });
      expect((JSON.parse((await store.readCreds('bot'))!) as { nextPreKeyId: number }).nextPreKeyId).toBe(30);
      expect(await store.readValues('bot', ['pre-key-5'])).toEqual(new Map());
    } finally {
      await store.close();
    }
  });

  it('accepts a pg.Pool and leaves it open', async () => {
    const pool = new pg.Pool({ connectionString: schema.url, max: 2 });
    const auth = await usePostgresAuthState(pool, 'pooled');
    await auth.saveCreds();
    await auth.close();
    expect(
      (await pool.query("SELECT count(*)::int AS n FROM whatsapp_auth WHERE session_id = 'pooled'")).rows[0],
    ).toEqual({ n: 1 });
    await pool.end();
  });
});
