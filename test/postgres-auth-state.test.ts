import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { usePostgresAuthState } from '../src/index.js';
import { freshSchema, pgUrl } from './helpers/postgres.js';

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
