import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  RateLimiter,
  sameOrigin,
  startHttp,
  type HttpOptions,
  type HttpServer,
  type SessionApi,
} from '../../src/daemon/http.js';
import type { PairingEvent, PairMethod } from '../../src/daemon/pairing.js';
import { usageError } from '../../src/errors.js';
import { ManualClock } from '../helpers/manual-clock.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}${path}`,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}),
          ...options.headers,
        },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const TOKEN = 's3cret';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };

/** A SessionApi that records its calls; pairing events are pushed by the test. */
function fakeApi() {
  const calls: Array<[string, ...unknown[]]> = [];
  let emit: ((e: PairingEvent) => void) | undefined;
  let end: (() => void) | undefined;
  const api: SessionApi = {
    create: (id, label) => {
      calls.push(['create', id, label]);
      if (id === 'taken') return Promise.reject(usageError('E_SESSION_EXISTS', `session '${id}' already exists`));
      return Promise.resolve({ id, label, state: 'unpaired' });
    },
    remove: (id, force) => {
      calls.push(['remove', id, force]);
      return Promise.resolve({ id, removed: true });
    },
    pair: (id, method: PairMethod) => {
      calls.push(['pair', id, method]);
      if (id === 'ghost') return Promise.reject(usageError('E_SESSION_UNKNOWN', `no session '${id}'`));
      return Promise.resolve({ id, method: method.method });
    },
    cancelPair: (id) => {
      calls.push(['cancel', id]);
      return Promise.resolve({ id, cancelled: true });
    },
    follow: (id, onEvent, onEnd) => {
      if (id !== 'bot') return undefined;
      onEvent({ event: 'qr', qr: 'QR-NOW', expiresAt: '2030-01-01T00:00:00.000Z' });
      emit = onEvent;
      end = onEnd;
      return () => undefined;
    },
    qrSvg: (id) => Promise.resolve(id === 'bot' ? '<svg xmlns="http://www.w3.org/2000/svg"></svg>' : undefined),
  };
  return { api, calls, emit: (e: PairingEvent) => emit?.(e), end: () => end?.() };
}

describe('daemon HTTP: sessions, pairing and the page (src/daemon/http.ts) on 127.0.0.1:0', () => {
  const servers: HttpServer[] = [];
  const start = async (api: SessionApi, options: Partial<HttpOptions> = {}): Promise<HttpServer> => {
    const server = await startHttp(
      { host: '127.0.0.1', port: 0 },
      {
        ready: () => Promise.resolve({ ready: true, body: {} }),
        sessions: () => Promise.resolve({ sessions: [] }),
        metrics: () => Promise.resolve(''),
        api,
      },
      { token: TOKEN, ...options },
    );
    servers.push(server);
    return server;
  };
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('POST /sessions: 201; the body must be a JSON object with a valid id (errors name the field); a taken id is 409', async () => {
    const { api, calls } = fakeApi();
    const { url } = await start(api);
    const created = await request(url, '/sessions', {
      method: 'POST',
      headers: JSON_AUTH,
      body: JSON.stringify({ id: 'bot', label: 'Support' }),
    });
    expect(created.status).toBe(201);
    expect(JSON.parse(created.body)).toMatchObject({ id: 'bot', label: 'Support' });
    expect(calls).toEqual([['create', 'bot', 'Support']]);

    const cases: Array<[headers: Record<string, string>, body: string, status: number, match: RegExp]> = [
      [{ ...AUTH, 'content-type': 'text/plain' }, '{"id":"x"}', 415, /JSON/],
      [JSON_AUTH, '{"id":', 400, /not valid JSON/],
      [JSON_AUTH, '[1]', 400, /JSON object/],
      [JSON_AUTH, '{}', 400, /^id: must be a string/],
      [JSON_AUTH, '{"id":"../x"}', 400, /^id: invalid session id/],
      [JSON_AUTH, '{"id":"ok","label":5}', 400, /^label: /],
    ];
    for (const [headers, body, status, match] of cases) {
      const answer = await request(url, '/sessions', { method: 'POST', headers, body });
      expect(answer.status, body).toBe(status);
      expect((JSON.parse(answer.body) as { error: string }).error, body).toMatch(match);
    }
    const taken = await request(url, '/sessions', { method: 'POST', headers: JSON_AUTH, body: '{"id":"taken"}' });
    expect([taken.status, (JSON.parse(taken.body) as { code: string }).code]).toEqual([409, 'E_SESSION_EXISTS']);
    expect(calls.length).toBe(2); // nothing invalid reached the API
  });

  it('DELETE /sessions/{id} passes ?force=1; a bad id in the path is 400; unauthenticated is 401 before any of it', async () => {
    const { api, calls } = fakeApi();
    const { url } = await start(api);
    expect((await request(url, '/sessions/bot', { method: 'DELETE', headers: AUTH })).status).toBe(200);
    expect((await request(url, '/sessions/bot?force=1', { method: 'DELETE', headers: AUTH })).status).toBe(200);
    expect(calls).toEqual([
      ['remove', 'bot', false],
      ['remove', 'bot', true],
    ]);
    const bad = await request(url, `/sessions/${encodeURIComponent('a b')}`, { method: 'DELETE', headers: AUTH });
    expect(bad.status).toBe(400);
    for (const [method, path] of [
      ['POST', '/sessions'],
      ['DELETE', '/sessions/a%20b'],
      ['POST', '/sessions/bot/pair'],
      ['GET', '/sessions/bot/pair'],
      ['GET', '/sessions/bot/pair/qr.svg'],
      ['GET', '/assets/app.js'],
    ] as const) {
      const denied = await request(url, path, { method, headers: { 'content-type': 'text/plain' }, body: 'x' });
      expect(denied.status, `${method} ${path}`).toBe(401);
    }
    expect(calls.length).toBe(2);
  });

  it('POST /sessions/{id}/pair: qr or code with a valid phone (the same rule as --phone); pairing codes are rate limited; errors map to 404', async () => {
    const { api, calls } = fakeApi();
    const { url } = await start(api, { rateLimits: { pairingCodesPerMinute: 2 } });
    const pair = (body: unknown, id = 'bot') =>
      request(url, `/sessions/${id}/pair`, { method: 'POST', headers: JSON_AUTH, body: JSON.stringify(body) });
    expect((await pair({ method: 'qr' })).status).toBe(202);
    const bad = await pair({ method: 'sms' });
    expect([bad.status, (JSON.parse(bad.body) as { error: string }).error]).toEqual([
      400,
      expect.stringMatching(/^method: /),
    ]);
    const noPhone = await pair({ method: 'code' });
    expect((JSON.parse(noPhone.body) as { error: string }).error).toMatch(/^phone: /);
    const badPhone = await pair({ method: 'code', phone: '0049 151 1234' });
    expect(badPhone.status).toBe(400);
    expect(JSON.parse(badPhone.body)).toMatchObject({
      code: 'E_PHONE',
      error: expect.stringMatching(/^phone must be/),
    });
    expect((await pair({ method: 'code', phone: '+49 151 1234-5678' })).status).toBe(202);
    expect((await pair({ method: 'code', phone: '4915112345678' })).status).toBe(202);
    const limited = await pair({ method: 'code', phone: '4915112345678' });
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toMatch(/^\d+$/);
    expect((await pair({ method: 'qr' }, 'ghost')).status).toBe(404);
    expect(calls.filter((c) => c[0] === 'pair').map((c) => c[2])).toEqual([
      { method: 'qr' },
      { method: 'code', phone: '4915112345678' },
      { method: 'code', phone: '4915112345678' },
      { method: 'qr' },
    ]);
    expect((await request(url, '/sessions/bot/pair', { method: 'DELETE', headers: AUTH })).status).toBe(200);
  });

  it('GET /sessions/{id}/pair streams each event as a plain `data: <json>` message (no event names), starting with the current QR, and ends with the pairing', async () => {
    const fake = fakeApi();
    const { url } = await start(fake.api);
    const answer = new Promise<Answer>((resolve, reject) => {
      httpRequest(`${url}/sessions/bot/pair`, { headers: AUTH, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
          if (body.includes('QR-NOW')) {
            fake.emit({ event: 'paired', jid: '15551230001:1@s.whatsapp.net', name: 'Ada' });
            fake.emit({ event: 'open', jid: '15551230001:1@s.whatsapp.net', name: 'Ada' });
            fake.end();
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
        .on('error', reject)
        .end();
    });
    const { status, headers, body } = await answer;
    expect(status).toBe(200);
    expect(headers['content-type']).toMatch(/^text\/event-stream/);
    expect(body).not.toMatch(/^event:/m);
    const events = body
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { event: string });
    expect(events.map((e) => e.event)).toEqual(['qr', 'paired', 'open']);
    expect((await request(url, '/sessions/other/pair', { headers: AUTH })).status).toBe(404);
    const svg = await request(url, '/sessions/bot/pair/qr.svg', { headers: AUTH });
    expect([svg.status, svg.headers['content-type']]).toEqual([200, 'image/svg+xml; charset=utf-8']);
    expect((await request(url, '/sessions/other/pair/qr.svg', { headers: AUTH })).status).toBe(404);
  });

  it('login: the token becomes an HttpOnly SameSite=Strict cookie (not the token), which authenticates; wrong tokens are 401 and limited to 5 a minute; the cookie expires', async () => {
    const clock = new ManualClock();
    const { url } = await start(fakeApi().api, { clock, cookieTtlMs: 60_000 });
    const origin = url;
    const form = { 'content-type': 'application/x-www-form-urlencoded', origin };
    const page = await request(url, '/');
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/<label for="token">token<\/label>/);
    expect(page.body).toMatch(/type="password"/);
    expect((await request(url, '/login', { method: 'POST', headers: form, body: 'token=nope' })).status).toBe(401);

    const ok = await request(url, '/login', { method: 'POST', headers: form, body: `token=${TOKEN}` });
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/');
    const setCookie = String(ok.headers['set-cookie']);
    expect(setCookie).toMatch(/^wa_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=60$/);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.split(';')[0]!;
    expect((await request(url, '/sessions', { headers: { cookie } })).status).toBe(200);
    const app = await request(url, '/', { headers: { cookie } });
    expect(app.body).toContain('/assets/app.js');
    // With the cookie, state changes need our Origin.
    const post = (headers: Record<string, string>) =>
      request(url, '/sessions', {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', ...headers },
        body: '{"id":"x"}',
      });
    expect((await post({ origin })).status).toBe(201);
    expect((await post({})).status).toBe(403);
    expect((await post({ origin: 'http://evil.example' })).status).toBe(403);

    for (let i = 0; i < 3; i++)
      expect((await request(url, '/login', { method: 'POST', headers: form, body: 'token=nope' })).status).toBe(401);
    const limited = await request(url, '/login', { method: 'POST', headers: form, body: `token=${TOKEN}` });
    expect(limited.status).toBe(429);
    await clock.advance(61_000);
    expect((await request(url, '/sessions', { headers: { cookie } })).status).toBe(401); // expired
    expect((await request(url, '/login', { method: 'POST', headers: form, body: `token=${TOKEN}` })).status).toBe(303);
  });

  it('judges Origin against Host exactly, and a sliding window counts attempts', async () => {
    expect(sameOrigin('http://127.0.0.1:8080', '127.0.0.1:8080')).toBe(true);
    expect(sameOrigin('https://wa.example.com', 'wa.example.com')).toBe(true);
    for (const [origin, host] of [
      ['null', '127.0.0.1:8080'],
      ['http://127.0.0.1:8081', '127.0.0.1:8080'],
      ['http://evil.example', 'wa.example.com'],
      ['file://', 'wa.example.com'],
      ['http://wa.example.com', undefined],
    ] as const)
      expect(sameOrigin(origin, host), `${origin} vs ${host}`).toBe(false);
    const clock = new ManualClock();
    const limiter = new RateLimiter(2, 60_000, clock);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('b')]).toEqual([undefined, undefined, undefined]);
    expect(limiter.take('a')).toBe(60);
    await clock.advance(30_000);
    expect(limiter.take('a')).toBe(30);
    await clock.advance(30_000);
    expect(limiter.take('a')).toBeUndefined();
  });
});
