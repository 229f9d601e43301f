/**
 * The HTTP API for messages and events (README "HTTP API"), end to end: real `wa serve` processes with the
 * real Baileys client against the test server. Two daemons on one SQLite database: the first owns the
 * sessions a and b, the second serves only c (unpaired), so a send it accepts for a is sent by the first.
 */
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pairSession } from '../helpers/pair.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const PHONE = '15550008881'; // a contact's simulated phone
const NOBODY = '15550008889'; // not on WhatsApp
const BOT_A = '15550008771';
const BOT_B = '15550008772';
const TOKEN = 'e2e-token';

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  json: Json;
  ms: number;
}
type Message = { id: string; session: string; to: string; status: string; code: string | null; key: string | null };
type Event = Json & { type: string; id?: string; cursor: string; session: string };

function call(base: string, path: string, options: { method?: string; body?: unknown; token?: string | null } = {}) {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const token = options.token === undefined ? TOKEN : options.token;
  const started = Date.now();
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        agent: false,
        headers: {
          ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined
            ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
            : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Json, ms: Date.now() - started }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('HTTP messages and events (wa serve)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let db: string;
  let jidA: string;
  let owner: WaProcess;
  let other: WaProcess;
  let ownerUrl: string;
  let otherUrl: string;

  const stanzasFromA = (id?: string): number =>
    server.messageLog({ device: jidA, tag: 'message', dir: 'in', ...(id ? { id } : {}) }).length;
  const eventsOf = async (session: string): Promise<Event[]> => {
    const res = await runWa(['listen', session, '--json'], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
  };
  const storedByB = async (id: string): Promise<Event[]> =>
    (await eventsOf('b')).filter((e) => e.type === 'message' && e.id === id);

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer({ knownNumbers: [PHONE] });
    db = join(dir.path, 'wa.db');
    jidA = await pairSession(server, db, 'a', BOT_A);
    await pairSession(server, db, 'b', BOT_B);
    expect((await runWa(['add', 'c'], { env: { WA_DB: db } })).code).toBe(0);
    const env = waEnv(server, db, {
      WA_API_TOKEN: TOKEN,
      WA_TIMING: 'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000',
    });
    owner = new WaProcess(['serve', 'a', 'b', '--http', '127.0.0.1:0'], env);
    ownerUrl = (await owner.waitForLine((l) => l.msg === 'wa serve started')).http as string;
    await until(() => owner.lines.filter((l) => l.msg === 'connection open').length >= 2 || undefined, 'a and b open');
    other = new WaProcess(['serve', 'c', '--http', '127.0.0.1:0'], env);
    otherUrl = (await other.waitForLine((l) => l.msg === 'wa serve started')).http as string;
  }, 90_000);
  afterAll(async () => {
    for (const proc of [owner, other]) {
      if (!proc) continue;
      proc.kill('SIGTERM');
      const exited = await Promise.race([
        proc.exited,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 12_000)),
      ]);
      if (!exited) {
        proc.kill('SIGKILL');
        await proc.exited;
      }
      expect(exited?.code, proc.stdout.slice(-2000)).toBe(0); // stopped gracefully, long-polls and all
    }
    await server?.close();
    await dir?.remove();
  }, 30_000);

  it('without the token: 401 on every new route, before the body or the parameters are looked at', async () => {
    for (const token of [null, 'wrong']) {
      for (const [path, body] of [
        ['/sessions/a/messages', { to: `+${BOT_B}`, text: 'no token' }],
        ['/sessions/a/messages?wait=nonsense', { bogus: true }],
        ['/sessions/a/messages/3EB0X', undefined],
        ['/events?since=abc', undefined],
        ['/events?session=ghost&wait=5', undefined],
      ] as const) {
        const res = await call(ownerUrl, path, { body, token });
        expect([res.status, res.json.code], `${path} ${token}`).toEqual([401, 'E_UNAUTHORIZED']);
      }
    }
    const before = stanzasFromA();
    expect((await eventsOf('a')).filter((e) => e.type === 'status')).toEqual([]);
    expect(stanzasFromA()).toBe(before);
  });

  it('a key sent twice: one message (b stores it once), the second answer names the same one', async () => {
    const body = { to: `+${BOT_B}`, text: 'exactly once over HTTP', key: 'http-once-1' };
    const first = await call(ownerUrl, '/sessions/a/messages', { body });
    expect(first.status, JSON.stringify(first.json)).toBe(202);
    const message = first.json as unknown as Message;
    expect(message).toMatchObject({ session: 'a', status: 'queued', key: 'http-once-1', code: null });
    const second = await call(ownerUrl, '/sessions/a/messages', { body });
    expect([200, 202]).toContain(second.status);
    expect(second.json.id).toBe(message.id);
    await until(async () => (await storedByB(message.id)).length > 0 || undefined, 'b stored it');
    const read = await call(ownerUrl, `/sessions/a/messages/${message.id}`);
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ id: message.id, session: 'a', key: 'http-once-1' });
    expect(['sent', 'delivered', 'read']).toContain(read.json.status);
    await new Promise((r) => setTimeout(r, 500)); // a second copy, if any, would have arrived by now
    expect((await storedByB(message.id)).map((e) => e.text)).toEqual(['exactly once over HTTP']);
    expect(stanzasFromA(message.id)).toBe(1);
  }, 60_000);

  it('?wait=sent answers 200 once WhatsApp acked it', async () => {
    const res = await call(ownerUrl, '/sessions/a/messages?wait=sent', { body: { to: PHONE, text: 'wait for it' } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(['sent', 'delivered', 'read']).toContain(res.json.status);
    expect(
      server
        .phoneMessages(PHONE)
        .filter((m) => m.id === res.json.id)
        .map((m) => m.text),
    ).toEqual(['wait for it']);
  }, 60_000);

  it('a number not on WhatsApp: 422 from the owner before anything is queued, no stanza reaches the server', async () => {
    const before = stanzasFromA();
    const statuses = (await eventsOf('a')).filter((e) => e.type === 'status').length;
    const res = await call(ownerUrl, '/sessions/a/messages', { body: { to: `+${NOBODY}`, text: 'anyone?' } });
    expect(res.status, JSON.stringify(res.json)).toBe(422);
    expect(res.json).toEqual({ error: `to: ${NOBODY} is not on WhatsApp`, code: 'E_NOT_ON_WHATSAPP' });
    expect(stanzasFromA()).toBe(before);
    expect((await eventsOf('a')).filter((e) => e.type === 'status').length).toBe(statuses);
    const group = await call(ownerUrl, '/sessions/a/messages', { body: { to: '123-456@g.us', text: 'x' } });
    expect([group.status, group.json.code]).toEqual([422, 'E_RECIPIENT_UNSUPPORTED']);
  }, 60_000);

  it('an ack with error 463: 502 with WhatsApp code and the message', async () => {
    server.failNextAck(jidA, { code: 463 });
    const res = await call(ownerUrl, '/sessions/a/messages?wait=sent', { body: { to: PHONE, text: 'refused' } });
    expect(res.status, JSON.stringify(res.json)).toBe(502);
    expect(res.json).toMatchObject({ code: 'E_REJECTED', message: { status: 'rejected', code: '463' } });
    expect(res.json.error).toContain('463');
  }, 60_000);

  it('GET /events long-polls and wakes when b receives the message', async () => {
    // Where b's log ends now: page through it (the answer's cursor is the next `since`).
    let since: string | undefined;
    for (;;) {
      const page = await call(ownerUrl, `/events?session=b&limit=1000${since ? `&since=${since}` : ''}`);
      expect(page.status).toBe(200);
      since = page.json.cursor as string;
      if ((page.json.events as unknown[]).length < 1000) break;
    }
    const idle = await call(ownerUrl, `/events?session=b&since=${since}&wait=1`);
    expect([idle.status, idle.json]).toEqual([200, { events: [], cursor: since }]);
    expect(idle.ms).toBeGreaterThanOrEqual(900);

    const polling = call(otherUrl, `/events?session=b&since=${since}&wait=30`); // any daemon reads the log
    await new Promise((r) => setTimeout(r, 500));
    const sent = await call(ownerUrl, '/sessions/a/messages', { body: { to: BOT_B, text: 'wake up' } });
    expect(sent.status).toBe(202);
    const woken = await polling;
    expect(woken.status).toBe(200);
    expect(woken.ms).toBeLessThan(20_000);
    const [event] = (woken.json.events as Event[]).filter((e) => e.type === 'message');
    expect(event).toMatchObject({ session: 'b', type: 'message', id: sent.json.id, text: 'wake up', fromMe: false });
    expect((event!.raw as { key: { id: string } }).key.id).toBe(sent.json.id);
    expect(woken.json.cursor).toBe((woken.json.events as Event[]).at(-1)!.cursor);
  }, 60_000);

  it('a daemon that does not own the session accepts the send; the owner sends it (and checks the number)', async () => {
    // a is the first daemon's, not this one's.
    const ownerId = owner.lines.find((l) => l.msg === 'wa serve started')!.owner;
    const views = (await call(otherUrl, '/sessions')).json.sessions as Array<{ id: string; owner: { id: string } }>;
    expect(views.find((v) => v.id === 'a')?.owner.id).toBe(ownerId);
    expect(other.lines.find((l) => l.msg === 'wa serve started')!.owner).not.toBe(ownerId);
    const logins = server.connectionLog().length;
    const res = await call(otherUrl, '/sessions/a/messages?wait=sent&timeout=30', {
      body: { to: BOT_B, text: 'via the other daemon', key: 'other-1' },
    });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(['sent', 'delivered', 'read']).toContain(res.json.status);
    const id = res.json.id as string;
    await until(async () => (await storedByB(id)).length > 0 || undefined, 'b stored it');
    expect((await storedByB(id)).map((e) => e.text)).toEqual(['via the other daemon']);
    expect(server.connectionLog().length).toBe(logins); // no second login: the owner's socket sent it
    expect((await call(otherUrl, `/sessions/a/messages/${id}`)).json.status).toMatch(/^(sent|delivered|read)$/);

    // The number check happens at the owner: rejected before any stanza is written, 422 here.
    const before = stanzasFromA();
    const nobody = await call(otherUrl, '/sessions/a/messages?wait=sent&timeout=30', {
      body: { to: NOBODY, text: 'anyone?' },
    });
    expect(nobody.status, JSON.stringify(nobody.json)).toBe(422);
    expect(nobody.json).toMatchObject({
      code: 'E_NOT_ON_WHATSAPP',
      message: { status: 'rejected', code: 'not-on-whatsapp' },
    });
    expect(stanzasFromA()).toBe(before);
    // c is not paired: 409.
    const unpaired = await call(otherUrl, '/sessions/c/messages', { body: { to: BOT_B, text: 'x' } });
    expect([unpaired.status, unpaired.json.code]).toEqual([409, 'E_NOT_PAIRED']);
    for (const proc of [owner, other]) expect(proc.lines.filter((l) => l.msg === 'HTTP route failed')).toEqual([]);
  }, 60_000);
});
