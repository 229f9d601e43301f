/**
 * The message and event routes (src/daemon/http-messages.ts) in process: the real HTTP server over a real
 * SQLite store in a temp dir, with a scripted desk where the error classes are the point, and the real
 * MessageDesk where waiting is.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, storageError, usageError, WaError } from '../../src/errors.js';
import { startHttp, type HttpOptions, type HttpRoutes, type HttpServer } from '../../src/daemon/http.js';
import { messageRoutes, type Desk, type MessageRoutes } from '../../src/daemon/http-messages.js';
import { MessageDesk, SendError, type SendRequest } from '../../src/daemon/message-desk.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { IncomingMessage, OutgoingMessage, SessionStore, StoredEvent } from '../../src/store/types.js';
import { tempDir } from '../helpers/temp.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
  ms: number;
}

const TOKEN = 's3cret';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };

/** One request; `abort()` closes its connection before the answer (a client that went away). */
function call(
  url: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: Agent } = {},
): { answer: Promise<Answer>; abort: () => void } {
  const started = Date.now();
  let abort = (): void => undefined;
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(
      `${url}${path}`,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}),
          ...options.headers,
        },
        agent: options.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(body) as Record<string, unknown>;
          } catch {
            // not JSON (HEAD, or a page)
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: parsed, ms: Date.now() - started });
        });
      },
    );
    req.on('error', reject);
    abort = () => req.destroy();
    req.end(options.body);
  });
  return { answer, abort };
}
const request = (...args: Parameters<typeof call>): Promise<Answer> => call(...args).answer;
const post = (url: string, path: string, body: unknown, headers: Record<string, string> = JSON_AUTH) =>
  request(url, path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** The message ids of the log's status events (of one status). */
const statusIds = (events: StoredEvent[], status?: string): string[] =>
  events.flatMap((e) => (e.type === 'status' && (status === undefined || e.status === status) ? [e.id] : []));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const outgoing = (over: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  id: '3EB0AAAA',
  session: 'a',
  to: '15550001111@s.whatsapp.net',
  text: 'hi',
  key: null,
  status: 'queued',
  code: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  ...over,
});

const incoming = (id: string, text: string): IncomingMessage => ({
  id,
  chat: '15550002222@s.whatsapp.net',
  from: '15550002222@s.whatsapp.net',
  fromMe: false,
  name: 'Bo',
  sentAt: '2026-01-01T00:00:00.000Z',
  kind: 'text',
  text,
  raw: JSON.stringify({ key: { id }, message: { conversation: text } }),
});

/** A store whose lastCursor and readEvents calls are counted. */
function counted(store: SqliteStore): { store: SessionStore; calls: { lastCursor: number; readEvents: number } } {
  const calls = { lastCursor: 0, readEvents: 0 };
  const view = new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (property === 'lastCursor' || property === 'readEvents') calls[property]++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: view, calls };
}

describe('HTTP messages and events (src/daemon/http-messages.ts)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let sqlite: SqliteStore;
  const servers: HttpServer[] = [];
  const routesList: MessageRoutes[] = [];

  beforeEach(async () => {
    dir = await tempDir();
    sqlite = new SqliteStore(join(dir.path, 'wa.db'));
    await sqlite.createSession('a', null);
    await sqlite.createSession('b', null);
  });
  afterEach(async () => {
    for (const routes of routesList.splice(0)) routes.close();
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    await sqlite.close();
    await dir.remove();
  });

  /** The daemon's HTTP with the message routes over `store` and a desk of the test's choosing. */
  const start = async (
    options: {
      desk?: (through: { store: SessionStore; watch: MessageRoutes['watch'] }) => Desk;
      store?: SessionStore;
      http?: Partial<HttpOptions>;
    } = {},
  ): Promise<{ url: string; routes: MessageRoutes; server: HttpServer }> => {
    const routes = messageRoutes({
      store: options.store ?? sqlite,
      desk: options.desk ?? (() => scripted(() => Promise.resolve({ message: outgoing(), created: true }))),
      pollMs: 50,
    });
    routesList.push(routes);
    const http: HttpRoutes = {
      ready: () => Promise.resolve({ ready: true, body: {} }),
      sessions: () => Promise.resolve({ sessions: [] }),
      metrics: () => Promise.resolve(''),
      messages: routes,
    };
    const server = await startHttp({ host: '127.0.0.1', port: 0 }, http, { token: TOKEN, ...options.http });
    servers.push(server);
    return { url: server.url, routes, server };
  };

  /** A desk whose send does what the test says, recording each request. */
  const sent: SendRequest[] = [];
  const scripted = (send: (request: SendRequest) => ReturnType<Desk['send']>, get?: Desk['get']): Desk => ({
    send: (request) => {
      sent.push(request);
      return send(request);
    },
    get: get ?? ((session, id) => Promise.resolve(outgoing({ session, id }))),
  });
  beforeEach(() => void sent.splice(0));

  it('authenticates first: without the token every new route is 401 (403 on a public bind without one), never 400, 404, 413 or 415', async () => {
    const { url } = await start();
    const attempts: Array<[string, string, Record<string, string>, string?]> = [
      ['POST', '/sessions/a/messages', { 'content-type': 'text/plain' }, 'hello'],
      ['POST', '/sessions/a/messages', { 'content-type': 'application/json' }, '{not json'],
      ['POST', '/sessions/a/messages', { 'content-type': 'application/json' }, '{"to":1}'],
      ['POST', '/sessions/a/messages?wait=soon', { 'content-type': 'application/json' }, '{}'],
      ['POST', '/sessions/a/messages', { 'content-length': String(1024 * 1024) }],
      ['POST', '/sessions/bad!id/messages', {}, '{}'],
      ['GET', '/sessions/a/messages', {}],
      ['GET', '/sessions/a/messages/x!y', {}],
      ['GET', '/sessions/ghost/messages/3EB0', {}],
      ['GET', '/events?since=abc', {}],
      ['GET', '/events?session=ghost', {}],
      ['GET', '/events?cursor=1', {}],
      ['DELETE', '/events', {}],
    ];
    for (const [method, path, headers, body] of attempts) {
      for (const auth of [{}, { authorization: 'Bearer wrong' }] as Array<Record<string, string>>) {
        const res = await request(url, path, { method, headers: { ...headers, ...auth }, body });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.json.code).toBe('E_UNAUTHORIZED');
      }
    }
    expect(sent).toEqual([]);

    const exposed = await start({ http: { token: undefined, public: true } });
    for (const [method, path, headers, body] of attempts) {
      const res = await request(exposed.url, path, { method, headers, body });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json.code).toBe('E_TOKEN_REQUIRED');
    }
  });

  it('checks the content type (415), the JSON (400) and the body size (413)', async () => {
    const { url } = await start();
    const typeless = await post(url, '/sessions/a/messages', '{"to":"+15550001111","text":"x"}', AUTH);
    expect([typeless.status, typeless.json.code]).toEqual([415, 'E_CONTENT_TYPE']);
    const plain = await post(url, '/sessions/a/messages', '{"to":"+15550001111","text":"x"}', {
      ...AUTH,
      'content-type': 'text/plain',
    });
    expect(plain.status).toBe(415);
    const withCharset = await post(
      url,
      '/sessions/a/messages',
      { to: '+15550001111', text: 'x' },
      {
        ...AUTH,
        'content-type': 'application/json; charset=utf-8',
      },
    );
    expect(withCharset.status).toBe(202);
    for (const body of ['{not json', '', '[1,2]', '"text"', 'null']) {
      const res = await post(url, '/sessions/a/messages', body);
      expect([res.status, res.json.code], body).toEqual([400, 'E_JSON']);
    }
    const big = await post(url, '/sessions/a/messages', { to: '+15550001111', text: 'x'.repeat(64 * 1024) });
    expect([big.status, big.json.code]).toEqual([413, 'E_TOO_LARGE']);
    expect(big.headers.connection).toBe('close');
    expect(sent).toHaveLength(1);
  });

  it('names the field in every validation error, refuses unknown fields and parameters, and checks the recipient (422)', async () => {
    const { url } = await start();
    const ok = { to: '+15550001111', text: 'hello' };
    const cases: Array<[string, unknown, number, RegExp]> = [
      ['/sessions/a/messages', { text: 'x' }, 400, /^to: must be a string/],
      ['/sessions/a/messages', { to: 15550001111, text: 'x' }, 400, /^to: /],
      ['/sessions/a/messages', { to: '+15550001111' }, 400, /^text: must be a string/],
      ['/sessions/a/messages', { ...ok, text: 5 }, 400, /^text: /],
      ['/sessions/a/messages', { ...ok, key: 7 }, 400, /^key: must be a string/],
      ['/sessions/a/messages', { ...ok, txt: 'typo' }, 400, /^txt: unknown field \(the body takes to, text, key\)/],
      ['/sessions/a/messages', { ...ok, wait: 'sent' }, 400, /^wait: unknown field/],
      ['/sessions/a/messages?wait=soon', ok, 400, /^wait: must be queued, sent, delivered/],
      ['/sessions/a/messages?wait=sent&wait=sent', ok, 400, /^wait: given more than once/],
      ['/sessions/a/messages?timeout=0', ok, 400, /^timeout: must be a number of seconds, more than 0 up to 120/],
      ['/sessions/a/messages?timeout=121', ok, 400, /^timeout: /],
      ['/sessions/a/messages?timeout=1e3', ok, 400, /^timeout: /],
      ['/sessions/a/messages?tiemout=5', ok, 400, /^tiemout: unknown parameter \(this route takes wait, timeout\)/],
      ['/sessions/bad!id/messages', ok, 400, /^id: /],
      ['/sessions/a/messages', { to: '12', text: 'x' }, 422, /^to: invalid recipient/],
      ['/sessions/a/messages', { to: '123-456@g.us', text: 'x' }, 422, /^to: sending to groups is not supported/],
    ];
    for (const [path, body, status, error] of cases) {
      const res = await post(url, path, body);
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(status);
      expect(res.json.error, `${path} ${JSON.stringify(body)}`).toMatch(error);
    }
    expect((await post(url, '/sessions/a/messages', { to: '12', text: 'x' })).json.code).toBe('E_RECIPIENT');
    expect((await post(url, '/sessions/a/messages', { to: '1@g.us', text: 'x' })).json.code).toBe(
      'E_RECIPIENT_UNSUPPORTED',
    );
    expect(sent).toEqual([]);

    const gets: Array<[string, RegExp]> = [
      ['/sessions/a/messages/bad%20id', /^msgId: /],
      ['/sessions/a/messages/3EB0?x=1', /^x: unknown parameter \(this route takes none\)/],
      ['/events?since=abc', /^since: must be a cursor/],
      ['/events?since=-1', /^since: /],
      ['/events?since=99999999999999999999', /^since: /],
      ['/events?since=1.5', /^since: /],
      ['/events?limit=0', /^limit: must be an integer from 1 to 1000/],
      ['/events?limit=1001', /^limit: /],
      ['/events?limit=ten', /^limit: /],
      ['/events?limit=1&limit=2', /^limit: given more than once/],
      ['/events?wait=61', /^wait: must be a number of seconds, from 0 up to 60/],
      ['/events?wait=-1', /^wait: /],
      ['/events?session=bad!id', /^session: /],
      ['/events?cursor=5', /^cursor: unknown parameter \(this route takes since, limit, wait, session\)/],
    ];
    for (const [path, error] of gets) {
      const res = await request(url, path, { headers: AUTH });
      expect(res.status, path).toBe(400);
      expect(res.json, path).toEqual({ error: expect.stringMatching(error), code: 'E_INVALID' });
    }
    const ghost = await request(url, '/events?session=a,ghost', { headers: AUTH });
    expect([ghost.status, ghost.json]).toEqual([
      404,
      { error: "session: no session 'ghost'", code: 'E_SESSION_UNKNOWN' },
    ]);
    expect((await request(url, '/events', { method: 'POST', headers: AUTH })).status).toBe(405);
    const list = await request(url, '/sessions/a/messages', { headers: AUTH });
    expect([list.status, list.headers.allow]).toEqual([405, 'POST']);
  });

  it('answers 202 with the message (and where to read it), 200 for a key used before or a wait reached', async () => {
    let created = true;
    const { url } = await start({
      desk: () =>
        scripted((r) =>
          Promise.resolve({
            message: outgoing({ key: r.key ?? null, status: r.wait === 'queued' ? 'queued' : 'sent' }),
            created,
          }),
        ),
    });
    const accepted = await post(url, '/sessions/a/messages', { to: '+15550001111', text: 'hi', key: 'job-1' });
    expect(accepted.status).toBe(202);
    expect(accepted.headers.location).toBe('/sessions/a/messages/3EB0AAAA');
    expect(accepted.json).toEqual({
      id: '3EB0AAAA',
      session: 'a',
      to: '15550001111@s.whatsapp.net',
      status: 'queued',
      code: null,
      key: 'job-1',
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(accepted.json).not.toHaveProperty('text');
    expect(sent[0]).toMatchObject({ session: 'a', to: '+15550001111', text: 'hi', key: 'job-1', wait: 'queued' });
    expect(sent[0]!.timeoutMs).toBe(60_000);
    created = false;
    const again = await post(url, '/sessions/a/messages', { to: '+15550001111', text: 'hi', key: 'job-1' });
    expect([again.status, again.json.id]).toEqual([200, '3EB0AAAA']);
    created = true;
    const waited = await post(url, '/sessions/a/messages?wait=sent&timeout=2.5', { to: '+15550001111', text: 'hi' });
    expect([waited.status, waited.json.status]).toEqual([200, 'sent']);
    expect(sent[2]).toMatchObject({ wait: 'sent', timeoutMs: 2500, key: undefined });
    expect(sent[2]!.signal).toBeInstanceOf(AbortSignal);
    expect(sent[2]!.detach).toBeInstanceOf(AbortSignal);

    const read = await request(url, '/sessions/a/messages/3EB0BBBB', { headers: AUTH });
    expect([read.status, read.json.id, read.json.session]).toEqual([200, '3EB0BBBB', 'a']);
    expect(Object.keys(read.json)).toEqual(Object.keys(accepted.json));
  });

  it('maps each error class to its status, and a send that fell short carries the message as it stands', async () => {
    let failWith: Error = new Error('unset');
    const { url } = await start({
      desk: () =>
        scripted(
          () => Promise.reject(failWith),
          () => Promise.reject(failWith),
        ),
    });
    const rejected = outgoing({ status: 'rejected', code: '463' });
    const cases: Array<[Error, number, string]> = [
      [usageError('E_TEXT', 'text: the message is empty'), 400, 'E_TEXT'],
      [usageError('E_KEY', 'key: must be 1 to 200 characters'), 400, 'E_KEY'],
      [usageError('E_SESSION_UNKNOWN', "no session 'zz'"), 404, 'E_SESSION_UNKNOWN'],
      [usageError('E_MESSAGE_UNKNOWN', "no message 'x' in session 'a'"), 404, 'E_MESSAGE_UNKNOWN'],
      [
        new SendError(ExitCode.usage, 'E_NOT_ON_WHATSAPP', 'to: 1555 is not on WhatsApp', rejected),
        422,
        'E_NOT_ON_WHATSAPP',
      ],
      [usageError('E_NOT_ON_WHATSAPP', 'to: 1555 is not on WhatsApp'), 422, 'E_NOT_ON_WHATSAPP'],
      [new WaError(ExitCode.notPaired, 'E_NOT_PAIRED', "session 'a' is unpaired"), 409, 'E_NOT_PAIRED'],
      [new WaError(ExitCode.busy, 'E_BUSY', 'in use'), 409, 'E_BUSY'],
      [
        new SendError(ExitCode.rejected, 'E_REJECTED', 'WhatsApp rejected the message (error 463)', rejected),
        502,
        'E_REJECTED',
      ],
      [
        new SendError(ExitCode.unavailable, 'E_TIMEOUT', 'did not reach sent', outgoing({ status: 'sending' })),
        504,
        'E_TIMEOUT',
      ],
      [
        new SendError(ExitCode.unavailable, 'E_UNKNOWN', 'outcome unknown', outgoing({ status: 'unknown' })),
        504,
        'E_UNKNOWN',
      ],
      [
        new SendError(ExitCode.unavailable, 'E_CANCELLED', 'cancelled', outgoing({ status: 'cancelled' })),
        504,
        'E_CANCELLED',
      ],
      [new SendError(ExitCode.unavailable, 'E_STOPPING', 'stopping', outgoing()), 503, 'E_STOPPING'],
      [storageError('E_DB_UNREACHABLE', 'cannot reach PostgreSQL'), 503, 'E_DB_UNREACHABLE'],
      [new Error('boom at /secret/path'), 500, 'E_INTERNAL'],
    ];
    for (const [error, status, code] of cases) {
      failWith = error;
      const res = await post(url, '/sessions/a/messages?wait=sent', { to: '+15550001111', text: 'x' });
      expect([res.status, res.json.code], code).toEqual([status, code]);
      if (error instanceof SendError) {
        expect(res.json.message, code).toMatchObject({ id: '3EB0AAAA', status: error.outgoing.status });
      } else expect(res.json).not.toHaveProperty('message');
      if (status !== 500) expect(res.json.error).toBe(error.message);
      else expect(res.body).not.toContain('secret');
    }
    failWith = new SendError(ExitCode.rejected, 'E_REJECTED', 'WhatsApp rejected the message (error 463)', rejected);
    const refused = await post(url, '/sessions/a/messages?wait=sent', { to: '+15550001111', text: 'x' });
    expect(refused.json).toMatchObject({
      error: 'WhatsApp rejected the message (error 463)',
      code: 'E_REJECTED',
      message: { status: 'rejected', code: '463' },
    });
    failWith = usageError('E_MESSAGE_UNKNOWN', "no message '3EB0' in session 'a'");
    expect((await request(url, '/sessions/a/messages/3EB0', { headers: AUTH })).status).toBe(404);
  });

  it('GET /events: the documented shape (raw as JSON), since exclusive, sessions repeated or comma-separated, limit, and a cursor to pass on', async () => {
    const { url } = await start();
    await sqlite.storeIncoming('a', [incoming('A1', 'one'), incoming('A2', 'two')], { replay: false });
    await sqlite.storeIncoming('b', [incoming('B1', 'three')], { replay: true });
    const all = await request(url, '/events', { headers: AUTH });
    expect(all.status).toBe(200);
    const events = all.json.events as Array<Record<string, unknown>>;
    expect(events.map((e) => [e.session, e.id, e.text])).toEqual([
      ['a', 'A1', 'one'],
      ['a', 'A2', 'two'],
      ['b', 'B1', 'three'],
    ]);
    expect(events[0]).toMatchObject({ type: 'message', kind: 'text', fromMe: false, replay: false, name: 'Bo' });
    expect(events[0]!.raw).toEqual({ key: { id: 'A1' }, message: { conversation: 'one' } });
    expect(all.json.cursor).toBe(events[2]!.cursor);

    const first = events[0]!.cursor as string;
    const after = await request(url, `/events?since=${first}&limit=1`, { headers: AUTH });
    expect((after.json.events as Array<{ id: string }>).map((e) => e.id)).toEqual(['A2']);
    expect(after.json.cursor).toBe(events[1]!.cursor);
    for (const filter of ['session=b', 'session=b,b', 'session=b&session=b']) {
      const only = await request(url, `/events?${filter}`, { headers: AUTH });
      expect(
        (only.json.events as Array<{ id: string }>).map((e) => e.id),
        filter,
      ).toEqual(['B1']);
    }
    for (const filter of ['session=a,b', 'session=a&session=b', 'session=b%2Ca']) {
      const both = await request(url, `/events?${filter}`, { headers: AUTH });
      expect((both.json.events as unknown[]).length, filter).toBe(3);
    }
    // Nothing new: the cursor given comes back (or 0 without one), so a loop passing it on is right.
    const last = all.json.cursor as string;
    expect((await request(url, `/events?since=${last}`, { headers: AUTH })).json).toEqual({ events: [], cursor: last });
    await sqlite.createSession('c', null);
    expect((await request(url, '/events?session=c', { headers: AUTH })).json).toEqual({ events: [], cursor: '0' });
  });

  it('a long-poll returns as soon as an event arrives, and after `wait` with none; neither is cut by the 10 s request timeout', async () => {
    const { url } = await start({ http: { limits: { requestTimeoutMs: 300, headersTimeoutMs: 300 } } });
    const since = await sqlite.lastCursor();
    const empty = await request(url, `/events?since=${since}&wait=1`, { headers: AUTH });
    expect(empty.json).toEqual({ events: [], cursor: since });
    expect(empty.ms).toBeGreaterThanOrEqual(950);
    expect(empty.ms).toBeLessThan(2000);

    const polling = request(url, `/events?since=${since}&wait=5&session=b`, { headers: AUTH });
    await sleep(200);
    await sqlite.storeIncoming('a', [incoming('A9', 'not for this poll')], { replay: false });
    await sleep(400);
    await sqlite.storeIncoming('b', [incoming('B9', 'for this poll')], { replay: false });
    const woken = await polling;
    expect(woken.status).toBe(200);
    expect((woken.json.events as Array<{ id: string }>).map((e) => e.id)).toEqual(['B9']);
    expect(woken.ms).toBeLessThan(1200);
    expect(woken.json.cursor).toBe(await sqlite.lastCursor());

    // Waiting longer than the request timeout once the request is in: answered, not 408.
    const long = request(url, `/events?since=${await sqlite.lastCursor()}&wait=0.8`, { headers: AUTH });
    expect((await long).status).toBe(200);
  });

  it('a client that goes away ends its wait: no more reads for it', async () => {
    const { store, calls } = counted(sqlite);
    const { url, routes } = await start({ store });
    const since = await sqlite.lastCursor();
    const polls = Array.from({ length: 3 }, () => call(url, `/events?since=${since}&wait=30`, { headers: AUTH }));
    for (const poll of polls) poll.answer.catch(() => undefined);
    const deadline = Date.now() + 3000;
    while (routes.watch.waiters < 3 && Date.now() < deadline) await sleep(20);
    expect(routes.watch.waiters).toBe(3);
    for (const poll of polls) poll.abort();
    while (routes.watch.waiters > 0 && Date.now() < deadline) await sleep(20);
    expect(routes.watch.waiters).toBe(0);
    await sleep(100);
    const after = calls.lastCursor;
    await sleep(300);
    expect(calls.lastCursor).toBe(after); // the watch stopped ticking: nobody waits
  });

  it('200 waiting long-polls cost one lastCursor a tick and, when an event comes, one read for all of them', async () => {
    const { store, calls } = counted(sqlite);
    const { url, routes } = await start({ store });
    const since = await sqlite.lastCursor();
    const agent = new Agent({ keepAlive: true, maxSockets: 250 });
    const polls = Array.from({ length: 200 }, (_, i) =>
      request(url, `/events?since=${since}&wait=20${i % 2 === 0 ? '&session=a' : ''}`, { headers: AUTH, agent }),
    );
    for (const poll of polls) poll.catch(() => undefined); // cut when the test fails
    // Settled: all 200 waiting, and no read of their own for a few ticks (those that came before the
    // watch's first tick read once more, at it).
    const deadline = Date.now() + 10_000;
    let reads = -1;
    while ((routes.watch.waiters < 200 || reads !== calls.readEvents) && Date.now() < deadline) {
      reads = calls.readEvents;
      await sleep(200);
    }
    expect(routes.watch.waiters).toBe(200);
    expect(calls.readEvents).toBeLessThanOrEqual(400);
    const before = { ...calls };
    await sleep(1000);
    const ticks = calls.lastCursor - before.lastCursor;
    console.info(
      `200 long-polls: ${ticks} lastCursor reads in 1 s (50 ms ticks), ${calls.readEvents - before.readEvents} event reads`,
    );
    expect(ticks).toBeLessThanOrEqual(21);
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect(calls.readEvents).toBe(before.readEvents);
    await sqlite.storeIncoming('a', [incoming('A5', 'for everyone')], { replay: false });
    const answers = await Promise.all(polls);
    agent.destroy();
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.every((a) => (a.json.events as Array<{ id: string }>)[0]?.id === 'A5')).toBe(true);
    expect(calls.readEvents - before.readEvents).toBe(1);
  });

  it('at the connection cap, a parked long-poll answers early (and closes) so a new client gets in', async () => {
    const { url } = await start({ http: { limits: { maxConnections: 3 } } });
    const since = await sqlite.lastCursor();
    const polls: Array<Promise<Answer>> = [];
    for (let i = 0; i < 3; i++) {
      const poll = request(url, `/events?since=${since}&wait=30`, { headers: AUTH });
      poll.catch(() => undefined); // the two still parked are cut when the test ends
      polls.push(poll);
      await sleep(100); // in order: the first is parked longest
    }
    const health = await request(url, '/healthz');
    expect(health.status).toBe(200);
    const first = await polls[0]!;
    expect(first.json).toEqual({ events: [], cursor: since });
    expect(first.headers.connection).toBe('close');
    expect(first.ms).toBeLessThan(5000);
  });

  it('close() (the daemon stopping) answers every long-poll now, and detaches every waiting send', async () => {
    let detached: AbortSignal | undefined;
    const { url, routes } = await start({
      desk: () =>
        scripted(
          (r) =>
            new Promise((_, reject) => {
              detached = r.detach;
              r.detach!.addEventListener('abort', () =>
                reject(new SendError(ExitCode.unavailable, 'E_STOPPING', 'this daemon is stopping', outgoing())),
              );
            }),
        ),
    });
    const poll = request(url, '/events?since=0&wait=30&session=b', { headers: AUTH });
    const sending = post(url, '/sessions/a/messages?wait=sent', { to: '+15550001111', text: 'x' });
    await sleep(300);
    routes.close();
    expect(detached?.aborted).toBe(true);
    const [polled, send] = await Promise.all([poll, sending]);
    expect([polled.status, polled.json.events]).toEqual([200, []]);
    expect(polled.ms).toBeLessThan(2000);
    expect([send.status, send.json.code, (send.json.message as { status: string }).status]).toEqual([
      503,
      'E_STOPPING',
      'queued',
    ]);
  });

  describe('with the real MessageDesk', () => {
    const desk = (through: { store: SessionStore; watch: MessageRoutes['watch'] }): Desk =>
      new MessageDesk({
        store: sqlite,
        socket: () => undefined,
        newMessageId: () => `3EB0${Math.random().toString(16).slice(2, 10).toUpperCase()}`,
        tools: { jidNormalizedUser: (jid) => jid ?? '' },
      }).with(through);

    beforeEach(async () => {
      await sqlite.writeCreds('a', '{}', { paired: true, jid: '15550009999:3@s.whatsapp.net', name: 'A' });
    });

    it('?wait=sent answers once the owner marked it sent, woken by its status event; a key used again returns the same message', async () => {
      const { store, calls } = counted(sqlite);
      const { url } = await start({ store, desk });
      const waiting = post(url, '/sessions/a/messages?wait=sent&timeout=10', {
        to: '+15550001111',
        text: 'hi',
        key: 'k1',
      });
      const deadline = Date.now() + 5000;
      let id: string | undefined;
      while (!id && Date.now() < deadline) {
        await sleep(50);
        id = statusIds(await sqlite.readEvents())[0];
      }
      await sleep(300);
      const reads = calls.readEvents;
      await sqlite.markMessage('a', id!, 'sending');
      await sqlite.markMessage('a', id!, 'sent');
      const answer = await waiting;
      expect([answer.status, answer.json.id, answer.json.status, answer.json.key]).toEqual([200, id, 'sent', 'k1']);
      expect(calls.readEvents - reads).toBeLessThanOrEqual(2); // one delta read per tick that saw the change

      const again = await post(url, '/sessions/a/messages', { to: '+15550001111', text: 'hi', key: 'k1' });
      expect([again.status, again.json.id, again.json.status]).toEqual([200, id, 'sent']);
      const read = await request(url, `/sessions/a/messages/${id}`, { headers: AUTH });
      expect(read.json).toEqual(again.json);
      expect((await request(url, '/sessions/a/messages/3EB0NOPE', { headers: AUTH })).json.code).toBe(
        'E_MESSAGE_UNKNOWN',
      );
    });

    it("a wait that runs out: 504, and a message still queued is cancelled; a rejection is 502 with WhatsApp's code", async () => {
      const { url } = await start({ desk });
      const late = await post(url, '/sessions/a/messages?wait=sent&timeout=0.3', { to: '+15550001111', text: 'x' });
      expect([late.status, late.json.code, (late.json.message as { status: string }).status]).toEqual([
        504,
        'E_CANCELLED',
        'cancelled',
      ]);
      const refused = post(url, '/sessions/a/messages?wait=delivered', { to: '+15550001111', text: 'y' });
      let id: string | undefined;
      while (!id) {
        await sleep(50);
        id = statusIds(await sqlite.readEvents(), 'queued')[1];
      }
      await sqlite.markMessage('a', id, 'sending');
      await sqlite.markMessage('a', id, 'rejected', '463');
      const answer = await refused;
      expect(answer.status).toBe(502);
      expect(answer.json).toMatchObject({ code: 'E_REJECTED', message: { id, status: 'rejected', code: '463' } });
      expect(answer.json.error).toContain('463');

      await sqlite.writeCreds('b', '{}', { paired: false, jid: null, name: null });
      expect((await post(url, '/sessions/b/messages', { to: '+15550001111', text: 'x' })).status).toBe(409);
      expect((await post(url, '/sessions/zz/messages', { to: '+15550001111', text: 'x' })).status).toBe(404);
      expect((await post(url, '/sessions/a/messages', { to: '+15550001111', text: '' })).json).toEqual({
        error: 'text: the message is empty',
        code: 'E_TEXT',
      });
    });

    it('a client that goes away while waiting: a message still queued is cancelled, as Ctrl-C on wa send', async () => {
      const { url } = await start({ desk });
      const waiting = call(url, '/sessions/a/messages?wait=sent', {
        method: 'POST',
        headers: JSON_AUTH,
        body: JSON.stringify({ to: '+15550001111', text: 'gone' }),
      });
      waiting.answer.catch(() => undefined);
      let id: string | undefined;
      while (!id) {
        await sleep(50);
        id = statusIds(await sqlite.readEvents())[0];
      }
      waiting.abort();
      const deadline = Date.now() + 3000;
      while ((await sqlite.getOutgoing('a', id))?.status !== 'cancelled' && Date.now() < deadline) await sleep(50);
      expect((await sqlite.getOutgoing('a', id))?.status).toBe('cancelled');
    });
  });
});
