/**
 * Webhook settings and `wa status` (README "Webhooks") through the real binary, without a WhatsApp server:
 * bad settings are usage errors naming what is wrong, and status shows each session's delivery state.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { IncomingMessage } from '../../src/store/types.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';

const CHAT = '15550001111@s.whatsapp.net';
const message = (id: string): IncomingMessage => ({
  id,
  chat: CHAT,
  from: CHAT,
  fromMe: false,
  name: null,
  sentAt: null,
  kind: 'text',
  text: id,
  raw: '{}',
});

describe('webhook settings and wa status', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let db: string;
  beforeEach(async () => {
    dir = await tempDir();
    db = join(dir.path, 'wa.db');
  });
  afterEach(() => dir.remove());

  it('refuses a non-http URL, a URL without WA_WEBHOOK_SECRET and an unknown event type (exit 2), never echoing the secret', async () => {
    const serve = (env: Record<string, string>) => runWa(['serve'], { env: { WA_DB: db, ...env } });
    const ftp = await serve({ WA_WEBHOOK_URL: 'ftp://hooks.example/wa', WA_WEBHOOK_SECRET: 'hunter2-secret' });
    expect(ftp).toMatchObject({ code: 2, stdout: '' });
    expect(ftp.stderr).toMatch(/WA_WEBHOOK_URL .*http:\/\/ or https:\/\//);
    expect(ftp.stderr).not.toContain('hunter2-secret');
    const noSecret = await serve({ WA_WEBHOOK_URL: 'https://hooks.example/wa' });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/WA_WEBHOOK_SECRET/);
    expect(noSecret.stderr).toMatch(/Try: export WA_WEBHOOK_SECRET=/);
    const unknown = await serve({
      WA_WEBHOOK_URL: 'https://hooks.example/wa',
      WA_WEBHOOK_SECRET: 's',
      WA_WEBHOOK_EVENTS: 'message,receipt',
    });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown event type "receipt"/);
  });

  it('shows pending, dead and the last error per session: only where a position exists, or everywhere when configured', async () => {
    const store = new SqliteStore(db);
    for (const id of ['a', 'b']) await store.createSession(id, null);
    await store.storeIncoming('a', [message('a1'), message('a2'), message('a3')], { replay: false });
    await store.appendEvent('a', { type: 'connection', connection: 'open', code: null, reason: null });
    await store.storeIncoming('b', [message('b1')], { replay: false });
    await store.acquireLease('a', { ownerId: 'serve-x', host: 'h', pid: 1 }, 60_000, false);
    const [a1, a2] = (await store.readEvents({ sessions: ['a'] })).map((e) => e.cursor);
    const fence = { fence: 'serve-x' };
    await store.recordWebhookDelivery('a', a1!, { result: 'dead', error: 'HTTP 410' }, fence);
    await store.recordWebhookDelivery(
      'a',
      a2!,
      { result: 'failed', error: 'no answer within 10000 ms', at: Date.now(), nextAt: Date.parse('2030-01-01') },
      fence,
    );
    await store.close();

    // Not configured here: the session delivered to before shows its state, the other nothing.
    const plain = await runWa(['status', '--json'], { env: { WA_DB: db } });
    expect(plain.code, plain.stderr).toBe(0);
    const views = (JSON.parse(plain.stdout) as { sessions: Array<Record<string, unknown>> }).sessions;
    expect(views.find((v) => v.id === 'a')?.webhook).toEqual({
      pending: 3, // a2 (failing), a3, the connection event
      dead: 1,
      delivered: 0,
      attempts: 1,
      nextAttemptAt: '2030-01-01T00:00:00.000Z',
      lastError: 'no answer within 10000 ms',
    });
    expect(views.find((v) => v.id === 'b')).not.toHaveProperty('webhook');

    // Configured (and filtered): every session, pending counted by the configured types.
    const configured = {
      WA_DB: db,
      WA_WEBHOOK_URL: 'https://hooks.example/wa',
      WA_WEBHOOK_SECRET: 's',
      WA_WEBHOOK_EVENTS: 'message',
    };
    const json = await runWa(['status', '--json'], { env: configured });
    const all = (JSON.parse(json.stdout) as { sessions: Array<{ id: string; webhook?: { pending: number } }> })
      .sessions;
    expect(all.map((v) => [v.id, v.webhook?.pending])).toEqual([
      ['a', 2],
      ['b', 1],
    ]);
    const table = await runWa(['status'], { env: configured });
    expect(table.code).toBe(0);
    const [header, rowA, rowB] = table.stdout.split('\n');
    expect(header).toMatch(/OWNER +WEBHOOK +LAST DISCONNECT/);
    expect(rowA).toContain('2 pending, 1 dead, failing (1 attempt): no answer within 10000 ms');
    expect(rowB).toContain('1 pending');
    const one = await runWa(['status', 'a'], { env: { WA_DB: db } });
    expect(one.stdout).toMatch(
      /^webhook: +3 pending, 1 dead, failing \(1 attempt\): no answer within 10000 ms; 0 delivered$/m,
    );
    expect(one.stdout).toMatch(/^webhook retry: +2030-01-01T00:00:00.000Z$/m);
    // No webhooks anywhere: no column.
    const none = new SqliteStore(join(dir.path, 'other.db'));
    await none.createSession('c', null);
    await none.close();
    const bare = await runWa(['status'], { env: { WA_DB: join(dir.path, 'other.db') } });
    expect(bare.stdout).not.toContain('WEBHOOK');
  });
});
