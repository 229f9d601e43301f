/**
 * Everything that arrives is kept (README "Receiving messages"), end to end: real `wa serve`, `wa connect` and
 * `wa listen` processes against the test server, whose simulated phone sends real encrypted messages.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pairSession } from '../helpers/pair.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const PHONE = '15550005555'; // a contact's simulated phone
const BOT_A = '15550006661';
const BOT_B = '15550006662';

type Event = Record<string, unknown> & { type: string; id?: string; cursor: string };

describe('received messages are stored once, live and from the offline backlog', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  let db: string;
  let jidA: string;
  let jidB: string;
  let serve: WaProcess | undefined;

  const listen = async (...args: string[]): Promise<Event[]> => {
    // Only the database: a reader needs neither the server nor the trust preload.
    const res = await runWa(['listen', '--json', ...args], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
  };
  const eventsFor = async (session: string, id: string): Promise<Event[]> =>
    (await listen(session)).filter((e) => e.id === id);
  const startServe = async (): Promise<WaProcess> => {
    const proc = new WaProcess(['serve', 'a'], env);
    await proc.waitForLine((l) => l.msg === 'connection open');
    return proc;
  };
  const stopServe = async (): Promise<WaProcess> => {
    const proc = serve!;
    proc.kill('SIGTERM');
    expect((await proc.exited).code).toBe(0);
    serve = undefined;
    return proc;
  };

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer({ knownNumbers: [PHONE] });
    db = join(dir.path, 'wa.db');
    jidA = await pairSession(server, db, 'a', BOT_A);
    jidB = await pairSession(server, db, 'b', BOT_B);
    env = waEnv(server, db, {
      WA_TIMING: 'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000',
    });
  }, 60_000);
  afterAll(async () => {
    serve?.kill('SIGKILL');
    await server.close();
    await dir.remove();
  });

  it('a message sent into a session serve holds: one message event, seen by listen and listen --follow beside serve; its text never in the info log', async () => {
    serve = await startServe();
    const follow = new WaProcess(['listen', 'a', '--follow', '--json'], { WA_DB: db });
    await new Promise((r) => setTimeout(r, 700)); // let it print the stored events and start polling
    const { id } = await server.sendFromPhone(PHONE, BOT_A, 'hello from the phone');
    const followed = await follow.waitForLine((l) => l.type === 'message' && l.id === id, 20_000);
    expect(followed).toMatchObject({
      session: 'a',
      type: 'message',
      text: 'hello from the phone',
      kind: 'text',
      fromMe: false,
      replay: false,
      from: `${PHONE}@s.whatsapp.net`,
      chat: `${PHONE}@s.whatsapp.net`,
    });
    expect(followed.cursor).toMatch(/^\d+$/);
    expect((followed.raw as { key: { id: string } }).key.id).toBe(id);
    follow.child.kill('SIGINT');
    expect((await follow.exited).code).toBe(0);

    const events = await eventsFor('a', id);
    expect(events.map((e) => [e.type, e.text])).toEqual([['message', 'hello from the phone']]);
    const stopped = await stopServe();
    expect(stopped.lines.some((l) => l.msg === 'messages stored')).toBe(true);
    expect(stopped.stdout).not.toContain('hello from the phone');
  }, 60_000);

  it("the backlog sent while b's daemon was down is stored by the next wa connect, as replay", async () => {
    const { id } = await server.sendFromPhone(PHONE, BOT_B, 'while you were away');
    await until(() => server.queued(jidB).some((q) => q.id === id), 'the copy queued for b');
    const connect = await runWa(['connect', 'b', '--json'], { env, timeoutMs: 60_000 });
    expect(connect.code, connect.stderr).toBe(0);
    // Stored before wa connect exited: no waiting here.
    const events = await eventsFor('b', id);
    expect(events.map((e) => [e.type, e.text, e.replay])).toEqual([['message', 'while you were away', true]]);
  }, 90_000);

  it('the same stanza delivered twice, and again after a reconnect: one stored message, one message event', async () => {
    serve = await startServe();
    // A message first, so the next ones are plain `msg` copies on an open session (a second copy of a
    // `msg` fails to decrypt and becomes a CIPHERTEXT stub, which must not turn into an event either).
    const warm = await server.sendFromPhone(PHONE, BOT_A, 'warm up');
    await until(async () => (await eventsFor('a', warm.id)).length > 0, 'the warm-up message');

    server.duplicateNext(jidA);
    const twice = await server.sendFromPhone(PHONE, BOT_A, 'delivered twice');
    await until(
      () => server.messageLog({ device: jidA, id: twice.id, dir: 'out', tag: 'message' }).length >= 2,
      'both copies delivered',
    );
    await until(
      () =>
        server
          .messageLog({ device: jidA, id: twice.id, dir: 'in' })
          .some((e) => (e.tag === 'receipt' && e.type === 'retry') || (e.tag === 'ack' && e.error)),
      'the second copy refused (retry receipt or nack)',
    );

    server.duplicateNext(jidA, { mode: 'after-reconnect' });
    const replayed = await server.sendFromPhone(PHONE, BOT_A, 'seen before');
    await until(async () => (await eventsFor('a', replayed.id)).length > 0, 'the first copy stored');
    await stopServe();
    serve = await startServe();
    await until(
      () => server.messageLog({ device: jidA, id: replayed.id, dir: 'out', tag: 'message' }).some((e) => e.offline),
      'the copy replayed at the next login',
    );
    await until(() => !server.queued(jidA).some((q) => q.id === replayed.id), 'the replayed copy answered');
    await new Promise((r) => setTimeout(r, 500));

    expect((await eventsFor('a', twice.id)).map((e) => [e.type, e.text])).toEqual([['message', 'delivered twice']]);
    expect((await eventsFor('a', replayed.id)).map((e) => [e.type, e.text, e.replay])).toEqual([
      ['message', 'seen before', false],
    ]);
    await stopServe();
  }, 90_000);

  it('a corrupted ciphertext is kept as an undecryptable event', async () => {
    serve = await startServe();
    server.corruptNext(jidA);
    const { id } = await server.sendFromPhone(PHONE, BOT_A, 'garbled on the way');
    const [event] = await until(async () => {
      const found = (await eventsFor('a', id)).filter((e) => e.type === 'undecryptable');
      return found.length > 0 ? found : undefined;
    }, 'the undecryptable event');
    expect(event).toEqual({
      cursor: event!.cursor,
      session: 'a',
      at: event!.at,
      type: 'undecryptable',
      id,
      chat: `${PHONE}@s.whatsapp.net`,
      from: `${PHONE}@s.whatsapp.net`,
    });
    // The retry receipt went to the phone; the simulated phone does not answer retries
    // (test/wa-server/README.md), so no decrypted copy follows here.
    await until(
      () => server.messageLog({ device: jidA, id, dir: 'in', tag: 'receipt' }).some((e) => e.type === 'retry'),
      'the retry receipt',
    );
    await stopServe();
  }, 60_000);
});

describe.skipIf(!pgUrl)('received messages on PostgreSQL', () => {
  it('serve stores a message in PostgreSQL and wa listen on the same database prints it once', async () => {
    const server = await startTestServer({ knownNumbers: [PHONE] });
    const schema = await freshSchema();
    try {
      await pairSession(server, schema.url, 'pg', BOT_A);
      const serve = new WaProcess(['serve'], waEnv(server, schema.url, { WA_TIMING: 'discoveryMs=1000' }));
      try {
        await serve.waitForLine((l) => l.msg === 'connection open');
        const { id } = await server.sendFromPhone(PHONE, BOT_A, 'stored in postgres');
        const read = async (): Promise<Event[]> => {
          const res = await runWa(['listen', 'pg', '--json'], { env: { WA_DB: schema.url } });
          expect(res.code, res.stderr).toBe(0);
          return res.stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Event)
            .filter((e) => e.id === id);
        };
        const deadline = Date.now() + 20_000;
        let events = await read();
        while (events.length === 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 300));
          events = await read();
        }
        expect(events.map((e) => [e.type, e.text, e.session])).toEqual([['message', 'stored in postgres', 'pg']]);
      } finally {
        serve.kill('SIGTERM');
        await serve.exited;
      }
    } finally {
      await server.close();
      await schema.drop();
    }
  }, 60_000);
});
