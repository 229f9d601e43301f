/**
 * Webhooks end to end (README "Webhooks"): real `wa serve` processes against the test server, whose
 * simulated phone sends real encrypted messages, posting to a real local HTTP receiver. Timing is shrunk
 * through WA_TIMING (retries from 200 ms capped at 1 s, a 1 s request timeout) with the production shape
 * kept; the receiver checks order, ids and signatures itself.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, pairSession } from '../helpers/pair.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { checkDeliveries, WebhookReceiver, type Delivery } from '../helpers/webhook-receiver.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const PHONE = '15550007777';
const BOT_A = '15550007771';
const BOT_B = '15550007772';
const SECRET = 'e2e webhook secret';
const FAST =
  'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000,' +
  'webhookBaseMs=200,webhookCapMs=1000,webhookTimeoutMs=1000';

type Event = { cursor: string; session: string; type: string; id?: string; text?: string };

describe('webhooks from wa serve', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let db: string;
  const daemons: WaProcess[] = [];
  const receivers: WebhookReceiver[] = [];

  const receiver = async (): Promise<WebhookReceiver> => {
    const r = new WebhookReceiver(SECRET);
    await r.up();
    receivers.push(r);
    return r;
  };
  const env = (r: WebhookReceiver, extra: Record<string, string> = {}): Record<string, string> =>
    waEnv(server, db, { WA_TIMING: FAST, WA_WEBHOOK_URL: r.url, WA_WEBHOOK_SECRET: SECRET, ...extra });
  const serve = async (r: WebhookReceiver, extra: Record<string, string> = {}, args: string[] = []) => {
    const d = new WaProcess(['serve', ...args], env(r, extra));
    daemons.push(d);
    for (const id of ['a', 'b']) await d.waitForLine((l) => l.session === id && l.msg === 'connection open');
    return d;
  };
  const stop = async (d: WaProcess): Promise<number> => {
    const at = Date.now();
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    return Date.now() - at;
  };
  const listen = async (session: string): Promise<Event[]> => {
    const res = await runWa(['listen', session, '--json'], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
  };
  /** Sends from the phone and waits until the message is stored; returns its event. */
  const send = async (to: 'a' | 'b', text: string): Promise<Event> => {
    const { id } = await server.sendFromPhone(PHONE, to === 'a' ? BOT_A : BOT_B, text);
    return until(async () => (await listen(to)).find((e) => e.type === 'message' && e.id === id), `${text} stored`);
  };
  const status = async (extra: Record<string, string>) => {
    const res = await runWa(['status', '--json'], { env: { WA_DB: db, ...extra } });
    expect(res.code, res.stderr).toBe(0);
    type View = { id: string; webhook?: { pending: number; dead: number; attempts: number; lastError: string | null } };
    return (JSON.parse(res.stdout) as { sessions: View[] }).sessions;
  };
  /** Waits until the receiver holds every event `wa listen` has for the session now. */
  const allArrive = async (r: WebhookReceiver, session: string, timeoutMs = 20_000): Promise<Event[]> => {
    const stored = await listen(session);
    await until(
      () => stored.every((e) => r.deliveries.some((d) => d.id === e.cursor && r.verifies(d))),
      `every stored event of ${session} at the receiver`,
      timeoutMs,
    );
    return stored;
  };
  const attemptsOf = (r: WebhookReceiver, event: Event): Delivery[] =>
    r.deliveries.filter((d) => d.id === event.cursor);

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer({ knownNumbers: [PHONE] });
    db = join(dir.path, 'wa.db');
    await pairSession(server, db, 'a', BOT_A);
    await pairSession(server, db, 'b', BOT_B);
  }, 60_000);
  afterEach(async () => {
    for (const d of daemons.splice(0)) {
      d.kill('SIGKILL');
      await d.exited;
    }
    for (const r of receivers.splice(0)) await r.down();
  });
  afterAll(async () => {
    await server.close();
    await dir.remove();
  });

  it('receiver down while messages arrive and the daemon restarts: every event arrives, per session in cursor order, signed, ids unchanged across retries', async () => {
    const r = await receiver();
    await r.down(); // refuses connections, on a port the daemon is told about
    let d = await serve(r);
    const sent = [await send('a', 'first while down'), await send('b', 'to b while down')];
    await until(
      async () => (await status({})).find((s) => s.id === 'a')?.webhook?.lastError?.includes('ECONNREFUSED'),
      'a refused delivery recorded',
    );
    // Restart meanwhile: the next daemon goes on from the position in the database.
    await stop(d);
    d = await serve(r);
    sent.push(await send('a', 'second while down'), await send('b', 'second to b'));
    // Up, but failing for a moment: retries reach the receiver, each signed anew.
    r.answer = () => 503;
    await r.up();
    await until(() => r.deliveries.length >= 4, 'some failed attempts');
    r.answer = () => 200;
    for (const session of ['a', 'b']) {
      const stored = await allArrive(r, session);
      const order = checkDeliveries(r, session);
      // Everything stored, in cursor order, from the oldest kept event (these sessions' first delivery).
      expect(order.slice(0, stored.length)).toEqual(stored.map((e) => e.cursor));
    }
    for (const event of sent) {
      const got = attemptsOf(r, event);
      expect(got.length).toBeGreaterThanOrEqual(1);
      expect(got.every((x) => x.event.text === event.text && x.event.type === 'message')).toBe(true);
    }
    // Some events were posted more than once (the 503s), each time with the same id and body (checked above).
    const ids = r.deliveries.map((x) => x.id);
    expect(new Set(ids.filter((id, i) => ids.indexOf(id) !== i)).size).toBeGreaterThan(0);
    expect(d.stdout).not.toContain(SECRET);
    expect(d.stdout).not.toContain('second while down'); // message content never in the log
    await stop(d);
  }, 120_000);

  it('a receiver answering 500 three times for one event: it is retried, the rest of its session follows in order, other sessions meanwhile', async () => {
    const r = await receiver();
    // A request timeout longer than the hold below, so every failure of M is a 500.
    const d = await serve(r, { WA_TIMING: `${FAST},webhookTimeoutMs=10000` });
    await until(() => r.deliveries.length > 0, 'the daemon caught up');
    const M = 'the one that fails';
    let failures = 0;
    let releaseFirst: (() => void) | undefined;
    r.answer = (delivery) => {
      if (delivery.event.text !== M || failures >= 3) return 200;
      failures++;
      // The first attempt is held until b's message arrives: sessions are delivered side by side.
      if (failures === 1) return new Promise((resolve) => (releaseFirst = () => resolve(500)));
      return 500;
    };
    const m = await send('a', M);
    await until(() => releaseFirst !== undefined, "M's first attempt in flight");
    const other = await send('b', 'b meanwhile');
    await until(() => attemptsOf(r, other).length > 0, "b's message while a's is held", 5000);
    releaseFirst!();
    const next = await send('a', 'after the failing one');
    await until(() => attemptsOf(r, next).length > 0, 'the next one of a');
    expect(attemptsOf(r, m)).toHaveLength(4);
    const ids = r.of('a').map((x) => x.id);
    const first = ids.indexOf(m.cursor);
    // Nothing of a between the first and the fourth attempt, and the next one only after.
    expect(ids.slice(first, first + 4)).toEqual([m.cursor, m.cursor, m.cursor, m.cursor]);
    expect(ids.indexOf(next.cursor)).toBeGreaterThan(first + 3);
    checkDeliveries(r, 'a');
    checkDeliveries(r, 'b');
    await stop(d);
  }, 90_000);

  it('a receiver that never answers: a timeout after the (1 s) limit is a failure, not a hang; SIGTERM mid-request still exits at once', async () => {
    const r = await receiver();
    const d = await serve(r);
    await until(() => r.deliveries.length > 0, 'the daemon caught up');
    const M = 'nobody answers this one at first';
    let hung = 0;
    r.answer = (delivery) => (delivery.event.text === M && hung++ === 0 ? 'hang' : 200);
    const m = await send('a', M);
    const next = await send('a', 'and then this');
    await until(() => attemptsOf(r, next).length > 0, 'the next one after the retry');
    const failed = d.lines.find((l) => l.msg === 'webhook delivery failed; retrying' && l.cursor === m.cursor);
    expect(failed).toMatchObject({ session: 'a', error: 'no answer within 1000 ms', attempts: 1 });
    expect(attemptsOf(r, m)).toHaveLength(2);
    checkDeliveries(r, 'a');

    // Everything hangs now; a stop must not wait for it.
    r.answer = () => 'hang';
    const stuck = await send('b', 'in flight at SIGTERM');
    await until(() => attemptsOf(r, stuck).length > 0, 'a request in flight');
    expect(await stop(d)).toBeLessThan(5000);
  }, 90_000);

  it('with the max age shortened, an event that keeps failing is dead (in /metrics and wa status), and the next ones are delivered', async () => {
    const r = await receiver();
    const timing = `${FAST},webhookMaxAgeMs=2500`;
    const extra = { WA_TIMING: timing };
    const configured = { WA_WEBHOOK_URL: r.url, WA_WEBHOOK_SECRET: SECRET };
    const deadBefore = (await status(configured)).find((s) => s.id === 'a')?.webhook?.dead ?? 0;
    const d = new WaProcess(['serve', '--http', '127.0.0.1:0'], env(r, extra));
    daemons.push(d);
    const base = (await d.waitForLine((l) => l.msg === 'wa serve started')).http as string;
    await d.waitForLine((l) => l.session === 'a' && l.msg === 'connection open');
    const M = 'this one never gets through';
    r.answer = (delivery) => (delivery.event.text === M ? 500 : 200);
    const m = await send('a', M);
    const next = await send('a', 'but this one does');
    await until(() => attemptsOf(r, next).length > 0, 'the next one, after M died', 20_000);
    const tries = attemptsOf(r, m);
    expect(tries.length).toBeGreaterThanOrEqual(2);
    expect(tries.at(-1)!.at - tries[0]!.at).toBeGreaterThanOrEqual(2000); // tried for the max age
    expect(d.lines.some((l) => String(l.msg).startsWith('webhook event dead') && l.cursor === m.cursor)).toBe(true);
    checkDeliveries(r, 'a');

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^wa_webhook_deliveries_total\{result="dead"\} 1$/m);
    expect(metrics).toMatch(/^wa_webhook_deliveries_total\{result="ok"\} [1-9]\d*$/m);
    const views = await status(configured);
    const a = views.find((s) => s.id === 'a')!.webhook!;
    expect(a).toMatchObject({ dead: deadBefore + 1, lastError: 'HTTP 500', attempts: 0 });
    const deadTotal = views.reduce((n, s) => n + (s.webhook?.dead ?? 0), 0);
    expect(metrics).toMatch(new RegExp(`^wa_webhook_dead_events ${deadTotal}$`, 'm'));
    expect(metrics).toMatch(/^wa_webhook_pending_events \d+$/m);
    // GET /sessions is the same document as wa status --json (the daemon's view at most a second old).
    const live = await until(async () => {
      const body = (await (await fetch(`${base}/sessions`)).json()) as { sessions: typeof views };
      const hook = body.sessions.find((s) => s.id === 'a')?.webhook;
      return hook?.dead === a.dead ? hook : undefined;
    }, '/sessions to show the dead event');
    expect(live).toMatchObject({ dead: a.dead, lastError: 'HTTP 500' });
    // Dead, but still in the log.
    expect((await listen('a')).some((e) => e.cursor === m.cursor && e.text === M)).toBe(true);
    await stop(d);
  }, 90_000);
});

describe.skipIf(!pgUrl)('webhooks from two daemons on one PostgreSQL database', () => {
  let server: TestServer;
  let schema: Awaited<ReturnType<typeof freshSchema>>;
  const daemons: WaProcess[] = [];
  const receivers: WebhookReceiver[] = [];

  afterAll(async () => {
    for (const d of daemons.splice(0)) {
      d.kill('SIGKILL');
      await d.exited;
    }
    for (const r of receivers.splice(0)) await r.down();
    await server?.close();
    await schema?.drop();
  });

  it("each session's events are posted by its owner only; after a kill -9 the other daemon goes on from the stored position (at most the in-flight event again)", async () => {
    server = await startTestServer({ knownNumbers: [PHONE] });
    schema = await freshSchema();
    await pairSession(server, schema.url, 'a', BOT_A);
    await pairSession(server, schema.url, 'b', BOT_B);
    // One receiver per daemon: whoever posted an event is told by where it arrived.
    const [r1, r2] = [new WebhookReceiver(SECRET), new WebhookReceiver(SECRET)];
    for (const r of [r1, r2]) {
      await r.up();
      receivers.push(r);
    }
    const start = (r: WebhookReceiver, args: string[]): WaProcess => {
      const d = new WaProcess(
        ['serve', ...args],
        waEnv(server, schema.url, { WA_TIMING: FAST, WA_WEBHOOK_URL: r.url, WA_WEBHOOK_SECRET: SECRET }),
      );
      daemons.push(d);
      return d;
    };
    const listen = async (session: string): Promise<Event[]> => {
      const res = await runWa(['listen', session, '--json'], { env: { WA_DB: schema.url } });
      expect(res.code, res.stderr).toBe(0);
      return res.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Event);
    };
    const send = async (to: 'a' | 'b', text: string): Promise<Event> => {
      const { id } = await server.sendFromPhone(PHONE, to === 'a' ? BOT_A : BOT_B, text);
      return until(async () => (await listen(to)).find((e) => e.type === 'message' && e.id === id), `${text} stored`);
    };
    const owners = async (): Promise<Record<string, number | undefined>> => {
      const store = await openTestStore(schema.url);
      try {
        return {
          a: (await store.getSession('a'))?.lease?.pid,
          b: (await store.getSession('b'))?.lease?.pid,
        };
      } finally {
        await store.close();
      }
    };

    const d1 = start(r1, ['a']); // serves a only
    await d1.waitForLine((l) => l.session === 'a' && l.msg === 'connection open');
    const d2 = start(r2, []); // serves every session: takes b now, waits for a
    await d2.waitForLine((l) => l.session === 'b' && l.msg === 'connection open');
    expect(await owners()).toEqual({ a: d1.child.pid, b: d2.child.pid });

    const before = [await send('a', 'a one'), await send('b', 'b one'), await send('a', 'a two')];
    for (const e of before) {
      await until(() => [...r1.deliveries, ...r2.deliveries].some((x) => x.id === e.cursor), `${e.text} posted`);
    }
    // Each event from its session's owner only.
    expect(r1.deliveries.every((x) => x.event.session === 'a')).toBe(true);
    expect(r2.deliveries.every((x) => x.event.session === 'b')).toBe(true);

    // A slow receiver, so the kill may well land with a request in flight.
    r1.answer = () => new Promise((resolve) => setTimeout(() => resolve(200), 300));
    const during = await send('a', 'a three, around the kill');
    await until(() => r1.deliveries.some((x) => x.id === during.cursor), 'a three reaching the receiver');
    d1.kill('SIGKILL');
    await d1.exited;
    await d2.waitForLine((l) => l.session === 'a' && l.msg === 'connection open', 20_000);
    expect((await owners()).a).toBe(d2.child.pid);
    const after = await send('a', 'a four, after the takeover');
    await until(() => r2.deliveries.some((x) => x.id === after.cursor), 'a four posted by the survivor');

    const stored = await listen('a');
    const fromR1 = checkDeliveries(r1, 'a');
    const fromR2 = checkDeliveries(r2, 'a');
    checkDeliveries(r2, 'b');
    // The survivor went on from the stored position: nothing the first daemon had finished is posted again,
    // only (perhaps) the one it had in flight, its last.
    const lastOfR1 = fromR1.at(-1)!;
    expect(fromR2.every((c) => BigInt(c) >= BigInt(lastOfR1))).toBe(true);
    expect(fromR1.filter((c) => fromR2.includes(c)).length).toBeLessThanOrEqual(1);
    // And together every event of a up to the last one sent arrived.
    const upTo = stored.filter((e) => BigInt(e.cursor) <= BigInt(after.cursor)).map((e) => e.cursor);
    await until(() => upTo.every((c) => fromR1.includes(c) || r2.deliveries.some((x) => x.id === c)), 'all of a');
    for (const text of ['a one', 'a two', 'a three, around the kill', 'a four, after the takeover']) {
      expect([...r1.deliveries, ...r2.deliveries].some((x) => x.event.text === text)).toBe(true);
    }
  }, 120_000);
});
