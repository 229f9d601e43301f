/**
 * The webhook dispatcher (README "Webhooks") in process: a real SQLite store, a manual clock for every
 * schedule (retries, polls, max age), and a real HTTP receiver on 127.0.0.1 that scripts its answers. The
 * receiver checks each signature with its own HMAC, never with the code under test.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_TIMING, type WebhookConfig } from '../../src/config.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { WebhookDispatcher, type WebhookTiming } from '../../src/daemon/webhooks.js';
import { eventJson } from '../../src/store/message-rows.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { until } from '../helpers/until.js';
import type { IncomingMessage as WaMessage, StoredEvent } from '../../src/store/types.js';
import { captureStream } from '../helpers/capture-stream.js';
import { ManualClock } from '../helpers/manual-clock.js';

const SECRET = 'receiver shared secret';
const OWNER = { ownerId: 'serve-a', host: 'test-host', pid: 1 };
const CHAT = '15550001111@s.whatsapp.net';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** The manual clock's time when it arrived. */
  at: number;
}

/** What the receiver does with a request: answer with a status, or never answer. */
type Answer = number | 'hang';

/** An HTTP receiver that records every request and answers as `answer` says. */
async function startReceiver(answer: (request: Received, index: number) => Answer, clock: ManualClock) {
  const received: Received[] = [];
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const request = { headers: req.headers, body, at: clock.now() };
      received.push(request);
      const a = answer(request, received.length - 1);
      if (a === 'hang') hanging.push(res);
      else res.writeHead(a, { 'content-type': 'text/plain' }).end(a < 300 ? 'ok' : 'not today');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/wa?token=t0ken`,
    received,
    ids: () => received.map((r) => r.headers['x-wa-event-id']),
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The receiver's own check of X-Wa-Signature (what README "Webhooks" tells receivers to do). */
function verify(request: Received, secret = SECRET): { ok: boolean; t: number } {
  const header = String(request.headers['x-wa-signature'] ?? '');
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return { ok: false, t: NaN };
  const expected = createHmac('sha256', secret).update(`${match[1]}.${request.body}`).digest('hex');
  return { ok: expected === match[2], t: Number(match[1]) };
}

const message = (id: string): WaMessage => ({
  id,
  chat: CHAT,
  from: CHAT,
  fromMe: false,
  name: 'Ada',
  sentAt: null,
  kind: 'text',
  text: `the secret text of ${id}`,
  raw: JSON.stringify({ key: { id, remoteJid: CHAT }, message: { conversation: `the secret text of ${id}` } }),
});

describe('WebhookDispatcher', () => {
  let store: SqliteStore;
  let clock: ManualClock;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let answer: (request: Received, index: number) => Answer;
  let dispatchers: WebhookDispatcher[];
  let metrics: Metrics;
  let logs: ReturnType<typeof captureStream>;
  const timing: WebhookTiming = {
    ...DEFAULT_TIMING,
    webhookTimeoutMs: 300, // real time: the request's own timeout
    webhookPollMs: 50,
  };

  const dispatcher = (options: { events?: WebhookConfig['events']; timing?: Partial<WebhookTiming> } = {}) => {
    const d = new WebhookDispatcher({
      store,
      config: { url: receiver.url, secret: SECRET, events: options.events },
      timing: { ...timing, ...options.timing },
      logger: pino({ level: 'debug' }, logs),
      clock,
      metrics,
      // The top of each backoff window: attempt n waits min(cap, base·2^n) less a millisecond.
      random: () => 0.999999,
      stopGraceMs: 200,
    });
    dispatchers.push(d);
    return d;
  };

  /** Advances the manual clock in steps, letting real I/O (the receiver) happen between, until `done`. */
  const runUntil = async (
    done: () => boolean | Promise<boolean>,
    what: string,
    stepMs = 50,
    realMs = 5000,
  ): Promise<void> => {
    const deadline = Date.now() + realMs;
    while (!(await done())) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(receiver.ids())}`);
      await clock.advance(stepMs);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const events = (session = 'bot'): Promise<StoredEvent[]> => store.readEvents({ sessions: [session] });
  const cursors = async (session = 'bot'): Promise<string[]> => (await events(session)).map((e) => e.cursor);
  const lease = async (id: string, ownerId = OWNER.ownerId): Promise<void> => {
    await store.createSession(id, null).catch(() => undefined);
    expect((await store.acquireLease(id, { ...OWNER, ownerId }, 600_000, true)).acquired).toBe(true);
  };

  beforeEach(async () => {
    store = new SqliteStore(':memory:');
    clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));
    answer = () => 200;
    receiver = await startReceiver((r, i) => answer(r, i), clock);
    dispatchers = [];
    metrics = new Metrics();
    logs = captureStream();
    await lease('bot');
  });
  afterEach(async () => {
    for (const d of dispatchers) await d.close();
    await receiver.close();
    await store.close();
  });

  it('posts every event once, in cursor order, as wa listen --json prints it, signed, with the cursor as event id', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2'), message('m3')], { replay: false });
    await store.appendEvent('bot', { type: 'connection', connection: 'open', code: null, reason: null });
    await store.updateSession('bot', { state: 'paired' }); // a state event
    await store.enqueueMessage('bot', { id: 'o1', to: CHAT, text: 'out' }); // a status event
    const stored = await events();
    expect(stored.map((e) => e.type)).toEqual(['message', 'message', 'message', 'connection', 'state', 'status']);

    const delivery = dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 6, 'six events');
    // New events are picked up by the shared poll.
    await store.storeIncoming('bot', [message('m4')], { replay: false });
    await runUntil(() => receiver.received.length >= 7, 'the seventh');
    const all = await events();
    expect(receiver.ids()).toEqual(all.map((e) => e.cursor));
    for (const [i, request] of receiver.received.entries()) {
      expect(request.headers['content-type']).toBe('application/json');
      expect(JSON.parse(request.body)).toEqual(eventJson(all[i]!));
      const signature = verify(request);
      expect(signature.ok, String(request.headers['x-wa-signature'])).toBe(true);
      expect(signature.t).toBe(Math.floor(request.at / 1000));
      expect(verify(request, 'another secret').ok).toBe(false);
    }
    // raw travels as JSON, not as a string holding JSON.
    expect((JSON.parse(receiver.received[0]!.body) as { raw: unknown }).raw).toEqual({
      key: { id: 'm1', remoteJid: CHAT },
      message: { conversation: 'the secret text of m1' },
    });
    await delivery.stop();
    expect(await store.webhookPosition('bot')).toMatchObject({ cursor: all[6]!.cursor, delivered: 7, dead: 0 });
    // Nothing is posted twice, and a stopped dispatcher leaves no timer behind.
    await clock.advance(5000);
    expect(receiver.received).toHaveLength(7);
    expect(clock.pending).toBe(0);
    expect(metrics.render([])).toMatch(/^wa_webhook_deliveries_total\{result="ok"\} 7$/m);
  });

  it('retries a failing event with full-jitter backoff (1 s, 2 s, 4 s ...) and posts the rest after it, in order', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2'), message('m3')], { replay: false });
    const [c1, c2, c3] = await cursors();
    let fails = 0;
    answer = (r) => (r.headers['x-wa-event-id'] === c2 && fails++ < 3 ? 500 : 200);
    dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 5, 'm1, three failures of m2, then m2', 100);
    await runUntil(() => receiver.received.length >= 6, 'm3', 100);
    expect(receiver.ids()).toEqual([c1, c2, c2, c2, c2, c3]);
    const at = receiver.received.map((r) => r.at);
    // Each retry waits the top of its window (random pinned): about 1 s, 2 s, 4 s (100 ms clock steps).
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(999);
    expect(at[2]! - at[1]!).toBeLessThanOrEqual(1300);
    expect(at[3]! - at[2]!).toBeGreaterThanOrEqual(1999);
    expect(at[3]! - at[2]!).toBeLessThanOrEqual(2300);
    expect(at[4]! - at[3]!).toBeGreaterThanOrEqual(3999);
    expect(at[4]! - at[3]!).toBeLessThanOrEqual(4300);
    // Every attempt is signed anew, under the same event id.
    for (const r of receiver.received) expect(verify(r).ok).toBe(true);
    expect(new Set(receiver.received.slice(1, 5).map((r) => r.body)).size).toBe(1);
    expect(await store.webhookPosition('bot')).toMatchObject({
      cursor: c3,
      attempts: 0,
      delivered: 3,
      dead: 0,
      lastError: 'HTTP 500',
    });
    const text = metrics.render([]);
    expect(text).toMatch(/^wa_webhook_deliveries_total\{result="failed"\} 3$/m);
    expect(text).toMatch(/^wa_webhook_deliveries_total\{result="ok"\} 3$/m);
  });

  it('keeps the failure in the database while it retries: attempts, first failure, next attempt, last error', async () => {
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    const [c1] = await cursors();
    answer = () => 503;
    const started = clock.now();
    dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 2, 'two attempts', 100);
    await runUntil(async () => (await store.webhookPosition('bot'))?.attempts === 2, 'the second failure recorded', 10);
    const position = (await store.webhookPosition('bot'))!;
    expect(position).toMatchObject({ cursor: '0', failingCursor: c1, attempts: 2, lastError: 'HTTP 503' });
    expect(position.firstFailedAt! - started).toBeLessThan(100);
    expect(position.nextAt! - receiver.received[1]!.at).toBeGreaterThanOrEqual(1999);
    expect((await store.webhookStats()).get('bot')).toMatchObject({ pending: 1, attempts: 2, lastError: 'HTTP 503' });
  });

  it('treats no answer within the timeout as a failure, not a hang, and retries', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2')], { replay: false });
    const [c1, c2] = await cursors();
    answer = (_r, i) => (i === 0 ? 'hang' : 200);
    const startedAt = Date.now();
    dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(async () => (await store.webhookPosition('bot'))?.attempts === 1, 'the timeout recorded', 20);
    expect(Date.now() - startedAt).toBeLessThan(2000); // the 300 ms request timeout, not the receiver's silence
    expect(await store.webhookPosition('bot')).toMatchObject({
      failingCursor: c1,
      lastError: 'no answer within 300 ms',
    });
    await runUntil(() => receiver.received.length >= 3, 'the retry and m2', 100);
    expect(receiver.ids()).toEqual([c1, c1, c2]);
  });

  it('calls a refused connection a failure too, without the URL or its token in the error', async () => {
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    const url = receiver.url;
    await receiver.close(); // nobody listens on the port now
    const d = new WebhookDispatcher({
      store,
      config: { url, secret: SECRET, events: undefined },
      timing,
      logger: pino({ level: 'debug' }, logs),
      clock,
      metrics,
    });
    dispatchers.push(d);
    d.deliver('bot', OWNER.ownerId);
    const deadline = Date.now() + 5000;
    while ((await store.webhookPosition('bot'))?.attempts !== 1) {
      if (Date.now() > deadline) throw new Error('no failure recorded');
      await clock.advance(10);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect((await store.webhookPosition('bot'))?.lastError).toBe('connection failed (ECONNREFUSED)');
    expect(logs.text).not.toContain('t0ken');
    expect(logs.text).toContain('"webhook":"http://127.0.0.1:');
    receiver = await startReceiver(() => 200, clock); // for afterEach
  });

  it('gives an event up after the max age from its first failure (the last try at the max age), counts it dead, and posts the next', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2')], { replay: false });
    const [c1, c2] = await cursors();
    answer = (r) => (r.headers['x-wa-event-id'] === c1 ? 500 : 200);
    dispatcher({ timing: { webhookMaxAgeMs: 10_000 } }).deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.ids().includes(c2), 'm2 after m1 died', 250);
    const tries = receiver.received.filter((r) => r.headers['x-wa-event-id'] === c1);
    // 0, ~1 s, ~3 s, ~7 s, then the cap of the window would be past 10 s: the last try falls at 10 s.
    expect(tries.length).toBe(5);
    expect(tries[4]!.at - tries[0]!.at).toBeGreaterThanOrEqual(10_000);
    expect(tries[4]!.at - tries[0]!.at).toBeLessThanOrEqual(10_750);
    expect(receiver.ids().slice(-1)).toEqual([c2]);
    expect(await store.webhookPosition('bot')).toMatchObject({
      cursor: c2,
      dead: 1,
      delivered: 1,
      lastError: 'HTTP 500',
    });
    expect(metrics.render([], new Map(), await store.webhookStats())).toMatch(/^wa_webhook_dead_events 1$/m);
    expect(metrics.render([])).toMatch(/^wa_webhook_deliveries_total\{result="dead"\} 1$/m);
    expect(logs.text).toMatch(/webhook event dead/);
    // Still readable.
    expect((await events()).map((e) => e.cursor)).toContain(c1);
  });

  it('posts only the configured event types, and moves the position past the others', async () => {
    await store.appendEvent('bot', { type: 'connection', connection: 'open', code: null, reason: null });
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    await store.appendEvent('bot', { type: 'connection', connection: 'closed', code: 428, reason: 'lost' });
    await store.enqueueMessage('bot', { id: 'o1', to: CHAT, text: 'out' });
    await store.appendEvent('bot', { type: 'state', state: 'logged_out' });
    const all = await events();
    const d = dispatcher({ events: ['message', 'status'] });
    const delivery = d.deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 2, 'the message and the status');
    await runUntil(
      async () => (await store.webhookPosition('bot'))?.cursor === all[4]!.cursor,
      'the position past the trailing state event',
    );
    expect(receiver.received.map((r) => (JSON.parse(r.body) as { type: string }).type)).toEqual(['message', 'status']);
    expect(receiver.ids()).toEqual([all[1]!.cursor, all[3]!.cursor]);
    expect(await store.webhookPosition('bot')).toMatchObject({ delivered: 2, dead: 0 });
    expect((await d.stats()).get('bot')).toMatchObject({ pending: 0 });
    await delivery.stop();
  });

  it('reads no events while idle: one shared lastCursor poll wakes only the sessions with new events', async () => {
    for (const id of ['a', 'b', 'c']) await lease(id);
    const reads: string[] = [];
    const readEvents = store.readEvents.bind(store);
    store.readEvents = (options) => {
      reads.push(options?.sessions?.join(',') ?? '*');
      return readEvents(options);
    };
    let polls = 0;
    const lastCursor = store.lastCursor.bind(store);
    store.lastCursor = () => {
      polls++;
      return lastCursor();
    };
    // As writes by another process on SQLite: no change hint reaches this one, only the poll sees them.
    store.watchChanges = () => () => undefined;
    const d = dispatcher();
    for (const id of ['a', 'b', 'c']) d.deliver(id, OWNER.ownerId);
    await runUntil(() => reads.length >= 3, 'the first read of each');
    await clock.advance(1000);
    await new Promise((r) => setTimeout(r, 20));
    reads.length = 0;
    polls = 0;
    await clock.advance(1000); // 20 poll ticks
    expect(reads).toEqual([]);
    expect(polls).toBeGreaterThanOrEqual(19);
    await store.storeIncoming('b', [message('b1')], { replay: false });
    await runUntil(() => receiver.received.length >= 1, 'b1');
    expect(reads).toEqual(['b', 'b']); // the woken worker reads, posts, and finds nothing more
  });

  it('a change hint (an event stored by this process) wakes the session at once, before any poll tick', async () => {
    await lease('a');
    const d = dispatcher();
    d.deliver('a', OWNER.ownerId);
    await clock.advance(1000);
    await new Promise((r) => setTimeout(r, 20));
    await store.storeIncoming('a', [message('a1')], { replay: false });
    await until(() => receiver.received.length >= 1, 'a1 without the clock moving', 2000);
  });

  it('stops mid-retry at once, posts nothing more, and leaves no timer behind', async () => {
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    answer = () => 500;
    const delivery = dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 3, 'three attempts', 100);
    await runUntil(async () => (await store.webhookPosition('bot'))?.attempts === 3, 'three failures recorded', 10);
    const stopAt = Date.now();
    await delivery.stop();
    expect(Date.now() - stopAt).toBeLessThan(100);
    await clock.advance(120_000);
    expect(receiver.received).toHaveLength(3);
    expect(clock.pending).toBe(0);
  });

  it('resumes a failing event where the last owner left it: its next attempt time, its count, its first failure', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2')], { replay: false });
    const [c1, c2] = await cursors();
    answer = (r) => (r.headers['x-wa-event-id'] === c1 ? 500 : 200);
    const maxAge = { webhookMaxAgeMs: 60_000 };
    const first = dispatcher({ timing: maxAge }).deliver('bot', OWNER.ownerId);
    await runUntil(async () => (await store.webhookPosition('bot'))?.attempts === 2, 'two failures recorded', 10);
    const stored = (await store.webhookPosition('bot'))!;
    await first.stop();

    // Another process takes the session over (a crash, a deploy) and goes on from the stored position.
    await lease('bot', 'serve-b');
    dispatcher({ timing: maxAge }).deliver('bot', 'serve-b');
    await runUntil(() => receiver.received.length >= 3, 'the third attempt', 100);
    expect(receiver.received[2]!.at).toBeGreaterThanOrEqual(stored.nextAt!); // not at once: the stored time
    await runUntil(async () => (await store.webhookPosition('bot'))?.attempts === 3, 'counted on from 2', 10);
    expect(await store.webhookPosition('bot')).toMatchObject({ attempts: 3, firstFailedAt: stored.firstFailedAt });
    // Dead 60 s after the first failure (by the old owner), not 60 s after the new owner started.
    await runUntil(() => receiver.ids().includes(c2), 'm2 after m1 died', 1000, 10_000);
    const tries = receiver.received.filter((r) => r.headers['x-wa-event-id'] === c1);
    expect(tries.at(-1)!.at - stored.firstFailedAt!).toBeGreaterThanOrEqual(60_000);
    expect(tries.at(-1)!.at - stored.firstFailedAt!).toBeLessThan(62_000);
    expect(await store.webhookPosition('bot')).toMatchObject({ cursor: c2, dead: 1, delivered: 1 });
  });

  it('tries once more before giving up an event whose max age passed while nobody owned the session', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2')], { replay: false });
    const [c1, c2] = await cursors();
    const old = clock.now() - 3 * 86_400_000;
    await store.recordWebhookDelivery(
      'bot',
      c1!,
      { result: 'failed', error: 'HTTP 502', at: old, nextAt: old + 1000 },
      { fence: OWNER.ownerId },
    );
    answer = () => 500;
    dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(async () => (await store.webhookPosition('bot'))?.dead === 1, 'm1 dead');
    expect(receiver.ids().filter((id) => id === c1)).toHaveLength(1);
    answer = () => 200;
    await runUntil(() => receiver.ids().includes(c2), 'm2', 100);
  });

  it('aborts a POST that is still in flight when stopped, briefly after, without hanging', async () => {
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    answer = () => 'hang';
    const delivery = dispatcher({ timing: { webhookTimeoutMs: 60_000 } }).deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 1, 'the request');
    const stopAt = Date.now();
    await delivery.stop();
    const took = Date.now() - stopAt;
    expect(took).toBeGreaterThanOrEqual(150); // the grace for the answer (200 ms) ...
    expect(took).toBeLessThan(1000); // ... then aborted
    // Not delivered, not failed: the next owner posts it again (at least once).
    expect(await store.webhookPosition('bot')).toBeUndefined();
  });

  it('stops when the lease is gone: a deposed owner posts no further event', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2'), message('m3')], { replay: false });
    const [c1] = await cursors();
    let tookOver = false;
    answer = (_r, i) => {
      if (i === 0) {
        // While m1 is in flight, another process takes the lease.
        tookOver = true;
        void lease('bot', 'serve-b');
      }
      return 200;
    };
    dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => tookOver, 'm1');
    await clock.advance(5000);
    await new Promise((r) => setTimeout(r, 50));
    await clock.advance(5000);
    expect(receiver.ids()).toEqual([c1]); // posted (at least once), but the deposed owner records nothing
    expect(await store.webhookPosition('bot')).toBeUndefined();
    expect(logs.text).toMatch(/lease is no longer ours/);
  });

  it('drains on request before stopping: what was stored just now is posted', async () => {
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    const delivery = dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 1, 'm1');
    await store.appendEvent('bot', { type: 'state', state: 'logged_out' }); // no poll tick in between
    const stopping = delivery.stop({ drainMs: 5000 });
    await runUntil(() => receiver.received.length >= 2, 'the state event', 10);
    await stopping;
    expect((JSON.parse(receiver.received[1]!.body) as { type: string; state: string }).state).toBe('logged_out');
  });

  it('a plain stop cuts a drain short (serve shutting down while a stopped session drains)', async () => {
    await store.storeIncoming('bot', [message('m1')], { replay: false });
    answer = () => 500;
    const delivery = dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 1, 'the first attempt');
    const draining = delivery.stop({ drainMs: 60_000 }); // the manual clock stands still: it would wait forever
    await new Promise((r) => setTimeout(r, 20));
    const at = Date.now();
    await Promise.all([delivery.stop(), draining]);
    expect(Date.now() - at).toBeLessThan(500);
  });

  it('never logs the secret or message content', async () => {
    await store.storeIncoming('bot', [message('m1'), message('m2')], { replay: false });
    answer = (_r, i) => (i < 2 ? 500 : 200);
    dispatcher().deliver('bot', OWNER.ownerId);
    await runUntil(() => receiver.received.length >= 4, 'both, after two failures', 100);
    expect(logs.text).toMatch(/webhook delivery failed; retrying/);
    expect(logs.text).toMatch(/webhook delivered/);
    expect(logs.text).not.toContain(SECRET);
    expect(logs.text).not.toContain('secret text');
    expect(logs.text).not.toContain('t0ken');
  });
});
