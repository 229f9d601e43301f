/**
 * Sending goes through the database (README "Sending messages"), end to end: real `wa send` and `wa serve`
 * processes against the test server, whose simulated phones decrypt what the sessions send.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, pairSession } from '../helpers/pair.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { runWa, WA_BIN } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const PHONE = '15550007771'; // a contact's simulated phone
const MIGRATED = '15550007772'; // a contact WhatsApp moved to LID
const NOBODY = '15550007779'; // not on WhatsApp
const BOT_A = '15550007661';
const BOT_B = '15550007662';

type Sent = { id: string; session: string; to: string; status: string; code: string | null };
type Event = Record<string, unknown> & { type: string; id?: string; status?: string };

describe('wa send: through the outbox, directly or through the owner', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  let db: string;
  let jidA: string;
  let serve: WaProcess | undefined;

  const send = async (...args: string[]) => {
    const res = await runWa(['send', '--json', ...args], { env, timeoutMs: 60_000 });
    const printed = res.stdout.trim() ? (JSON.parse(res.stdout.trim()) as Sent) : undefined;
    return { ...res, printed };
  };
  const events = async (session: string): Promise<Event[]> => {
    const res = await runWa(['listen', session, '--json'], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
  };
  const statusesOf = async (session: string, id: string): Promise<string[]> =>
    (await events(session)).filter((e) => e.type === 'status' && e.id === id).map((e) => e.status!);
  const row = async (session: string, id: string) => {
    const store = await openTestStore(db);
    try {
      return await store.getOutgoing(session, id);
    } finally {
      await store.close();
    }
  };
  const sentToServer = (): number => server.messageLog({ device: jidA, tag: 'message', dir: 'in' }).length;
  const stopServe = async (): Promise<void> => {
    serve!.kill('SIGTERM');
    expect((await serve!.exited).code).toBe(0);
    serve = undefined;
  };

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer({ knownNumbers: [PHONE, MIGRATED] });
    db = join(dir.path, 'wa.db');
    jidA = await pairSession(server, db, 'a', BOT_A);
    await pairSession(server, db, 'b', BOT_B);
    env = waEnv(server, db, {
      WA_TIMING: 'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000',
    });
  }, 60_000);
  afterAll(async () => {
    serve?.kill('SIGKILL');
    await server.close();
    await dir.remove();
  });

  it('sends directly with no daemon: the phone decrypts it once, the row is sent, every step is a status event', async () => {
    const res = await send('a', `+${PHONE}`, 'deploy done');
    expect(res.code, res.stderr).toBe(0);
    expect(res.printed).toMatchObject({ session: 'a', code: null });
    // Sent at least; the phone's delivery receipt may already have come in while wa send lingered.
    expect(['sent', 'delivered', 'read']).toContain(res.printed!.status);
    const id = res.printed!.id;
    const got = await server.phoneMessages(PHONE).filter((m) => m.id === id);
    expect(got.map((m) => m.text)).toEqual(['deploy done']);
    expect((await statusesOf('a', id)).slice(0, 3)).toEqual(['queued', 'sending', 'sent']);
    // Sent to the contact's LID (WhatsApp addresses it so), which the printed message names.
    expect(res.printed!.to).toMatch(/@lid$/);
    expect((await row('a', id))?.text).toBe('deploy done');
  }, 60_000);

  it('reads the text from stdin ("-")', async () => {
    const child = spawn(process.execPath, [WA_BIN, 'send', '--json', 'a', PHONE, '-'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end('from a pipe\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(0);
    const { id } = JSON.parse(stdout) as Sent;
    expect(
      server
        .phoneMessages(PHONE)
        .filter((m) => m.id === id)
        .map((m) => m.text),
    ).toEqual(['from a pipe']);
  }, 60_000);

  it('refuses bad recipients and groups before anything (exit 2)', async () => {
    for (const to of ['12', 'abc', '123-456@g.us', '+15551234567:3@s.whatsapp.net']) {
      const res = await runWa(['send', 'a', to, 'x'], { env });
      expect(res.code, `${to}: ${res.stderr}`).toBe(2);
      expect(res.stdout).toBe('');
    }
    expect((await runWa(['send', 'a', '123-456@g.us', 'x'], { env })).stderr).toContain('not supported yet');
    expect((await runWa(['send', 'nobody', `+${PHONE}`, 'x'], { env })).code).toBe(2);
  });

  it('a number not on WhatsApp: exit 2, nothing queued, no message stanza reaches the server', async () => {
    const before = sentToServer();
    const statusEvents = (await events('a')).filter((e) => e.type === 'status').length;
    const res = await send('a', NOBODY, 'anyone there?');
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('not on WhatsApp');
    expect(sentToServer()).toBe(before);
    expect((await events('a')).filter((e) => e.type === 'status').length).toBe(statusEvents);
  }, 60_000);

  it('--key twice: one message, the second run prints the first one and sends nothing', async () => {
    const first = await send('a', PHONE, 'only once', '--key', 'job-17');
    expect(first.code, first.stderr).toBe(0);
    const before = sentToServer();
    const second = await send('a', PHONE, 'only once', '--key', 'job-17');
    expect(second.code, second.stderr).toBe(0);
    expect(second.printed).toEqual(first.printed);
    expect(sentToServer()).toBe(before);
    expect(server.phoneMessages(PHONE).filter((m) => m.text === 'only once')).toHaveLength(1);
  }, 60_000);

  it('an ack with error 463: exit 7, the row rejected with the code, never sent again', async () => {
    server.failNextAck(jidA, { code: 463 });
    const res = await send('a', PHONE, 'refused');
    expect(res.code, res.stderr).toBe(7);
    expect(res.printed).toMatchObject({ status: 'rejected', code: '463' });
    const id = res.printed!.id;
    // A later send goes out (the sender drains in order), and the rejected one is not among its writes.
    const next = await send('a', PHONE, 'after the refusal');
    expect(next.code, next.stderr).toBe(0);
    expect(server.messageLog({ device: jidA, tag: 'message', dir: 'in', id })).toHaveLength(1);
    expect((await row('a', id))?.status).toBe('rejected');
  }, 60_000);

  it('a contact moved to LID is reached through its LID', async () => {
    server.setLidMigrated(MIGRATED);
    const res = await send('a', `${MIGRATED}@s.whatsapp.net`, 'hello lid');
    expect(res.code, res.stderr).toBe(0);
    expect(res.printed!.to).toMatch(/@lid$/);
    expect(server.phoneMessages(MIGRATED).map((m) => m.text)).toContain('hello lid');
  }, 60_000);

  it('a connection dropped after the write and before the ack: unknown (exit 4), then sent again with the same id; b keeps one copy', async () => {
    // Receipts are held (b's, and the `sender` receipt of a's own phone, which is a SERVER_ACK), so only
    // the resend can settle the message: a receipt reaching a's next connection first would prove the
    // first write arrived, and then nothing needs sending again.
    server.holdReceipts(BOT_B);
    server.holdReceipts(BOT_A);
    server.dropBeforeAck(jidA, { deliver: true });
    const res = await send('a', BOT_B, 'ambiguous');
    expect(res.code, res.stderr).toBe(4);
    expect(res.printed).toMatchObject({ status: 'unknown' });
    const id = res.printed!.id;
    const status = await runWa(['status', 'a', '--json'], { env: { WA_DB: db } });
    expect(JSON.parse(status.stdout)).toMatchObject({ outbox: { queued: 0, unknown: 1 } });
    serve = new WaProcess(['serve', 'a', 'b'], env);
    await until(
      async () => ['sent', 'delivered', 'read'].includes((await row('a', id))?.status ?? '') || undefined,
      'the resend acknowledged',
      30_000,
    ).catch(async (error: unknown) => {
      console.error(await row('a', id), JSON.stringify(serve!.lines.slice(-20)));
      throw error;
    });
    expect(server.messageLog({ device: jidA, tag: 'message', dir: 'in', id }).length).toBe(2);
    server.releaseReceipts(BOT_B);
    server.releaseReceipts(BOT_A);
    await until(
      async () => (await events('b')).some((e) => e.type === 'message' && e.id === id) || undefined,
      'b stored it',
    );
    expect((await statusesOf('a', id)).slice(0, 5)).toEqual(['queued', 'sending', 'unknown', 'sending', 'sent']);
    // The second copy is deduplicated: b's log keeps one message event for the id.
    const b = await events('b');
    expect(b.filter((e) => e.type === 'message' && e.id === id)).toHaveLength(1);
  }, 90_000);

  it('with serve owning both sessions: a text from a reaches b once, a row goes sent → delivered, no second login', async () => {
    serve ??= new WaProcess(['serve', 'a', 'b'], env);
    await serve.waitForLine((l) => l.msg === 'connection open');
    await until(() => serve!.lines.filter((l) => l.msg === 'connection open').length >= 2 || undefined, 'both open');
    const logins = server.connectionLog().length;
    const res = await send('a', BOT_B, 'hi b', '--wait', 'delivered');
    expect(res.code, res.stderr).toBe(0);
    expect(res.printed).toMatchObject({ status: 'delivered' });
    const id = res.printed!.id;
    expect(server.connectionLog().length).toBe(logins);
    const b = (await events('b')).filter((e) => e.type === 'message' && e.id === id);
    expect(b.map((e) => e.text)).toEqual(['hi b']);
    const statuses = await statusesOf('a', id);
    expect(statuses.slice(0, 4)).toEqual(['queued', 'sending', 'sent', 'delivered']);
  }, 90_000);

  it('with serve owning the session, a number not on WhatsApp: the owner rejects it before writing anything, exit 2', async () => {
    expect(serve).toBeDefined();
    const before = sentToServer();
    const res = await send('a', `+${NOBODY}`, 'anyone?');
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('not on WhatsApp');
    expect(res.printed).toMatchObject({ status: 'rejected', code: 'not-on-whatsapp' });
    expect(sentToServer()).toBe(before);
  }, 60_000);

  it('--timeout while queued (the owner, on another host, never sends): cancelled, exit 4, and never sent later', async () => {
    if (serve) await stopServe();
    // A live owner elsewhere that does not drain (an old deployment hanging, say): wa send delegates to it.
    const store = await openTestStore(db);
    const owner = { ownerId: 'serve-elsewhere', host: 'another-host', pid: 1 };
    expect((await store.acquireLease('a', owner, 120_000, true)).acquired).toBe(true);
    let res: Awaited<ReturnType<typeof send>>;
    try {
      res = await send('a', PHONE, 'too late', '--timeout', '1');
    } finally {
      await store.releaseLease('a', owner.ownerId);
      await store.close();
    }
    expect(res.code, res.stderr).toBe(4);
    expect(res.printed).toMatchObject({ status: 'cancelled' });
    const id = res.printed!.id;
    // The next sender drains in order: once a later message is sent, the cancelled one was passed over.
    const later = await send('a', PHONE, 'in time');
    expect(later.code, later.stderr).toBe(0);
    expect(server.messageLog({ device: jidA, tag: 'message', dir: 'in', id })).toHaveLength(0);
    expect(server.phoneMessages(PHONE).map((m) => m.text)).not.toContain('too late');
    expect(await statusesOf('a', id)).toEqual(['queued', 'cancelled']);
  }, 90_000);
});

describe.skipIf(!pgUrl)('wa send through PostgreSQL', () => {
  it('delegated to serve (no second login), then directly once serve stopped; b stores each once', async () => {
    const server = await startTestServer();
    const schema = await freshSchema();
    try {
      await pairSession(server, schema.url, 'pa', '15550007663');
      await pairSession(server, schema.url, 'pb', '15550007664');
      const env = waEnv(server, schema.url, { WA_TIMING: 'discoveryMs=1000,leaseTtlMs=3000,leaseRenewMs=1000' });
      const sendOver = async (text: string, ...args: string[]): Promise<Sent> => {
        const res = await runWa(['send', '--json', 'pa', '15550007664', text, ...args], { env, timeoutMs: 60_000 });
        expect(res.code, res.stderr).toBe(0);
        return JSON.parse(res.stdout) as Sent;
      };
      const storedByB = async (id: string): Promise<Event[]> => {
        const res = await runWa(['listen', 'pb', '--json'], { env: { WA_DB: schema.url } });
        expect(res.code, res.stderr).toBe(0);
        return res.stdout
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Event)
          .filter((e) => e.type === 'message' && e.id === id);
      };
      const serve = new WaProcess(['serve'], env);
      let delegated: Sent;
      try {
        await serve.waitForLine((l) => l.msg === 'connection open' && l.session === 'pa');
        await serve.waitForLine((l) => l.msg === 'connection open' && l.session === 'pb');
        const logins = server.connectionLog().length;
        delegated = await sendOver('over postgres', '--wait', 'delivered');
        expect(delegated.status).toMatch(/^(delivered|read)$/);
        expect(server.connectionLog().length).toBe(logins);
      } finally {
        serve.kill('SIGTERM');
        await serve.exited;
      }
      expect((await storedByB(delegated.id)).map((e) => e.text)).toEqual(['over postgres']);
      const direct = await sendOver('directly over postgres');
      expect(direct.status).toMatch(/^(sent|delivered|read)$/);
      // b is offline now: its copy waits at the server for b's next login.
      expect(server.queued(server.devices().find((d) => d.phone === '15550007664')!.jid).map((q) => q.id)).toContain(
        direct.id,
      );
    } finally {
      await server.close();
      await schema.drop();
    }
  }, 120_000);
});
