import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import {
  HTTP_LIMITS,
  bearerMatches,
  isLoopback,
  sharedRead,
  startHttp,
  type HttpOptions,
  type HttpRoutes,
  type HttpServer,
} from '../../src/daemon/http.js';
import { storageError } from '../../src/errors.js';
import { ManualClock } from '../helpers/manual-clock.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on its own connection; `body` as a string, or `{ chunked: bytes }` streamed without a length. */
function request(
  url: string,
  path: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | { chunked: number };
    agent?: Agent;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}${path}`,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(typeof options.body === 'string' ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}),
          ...options.headers,
        },
        agent: options.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    const body = options.body;
    if (typeof body === 'object') {
      // Written but not ended: the server must answer from what it has read so far.
      req.write(Buffer.alloc(body.chunked, 'a'));
    } else {
      req.end(body);
    }
  });
}

const routes = (overrides: Partial<HttpRoutes> = {}): HttpRoutes => ({
  ready: () => Promise.resolve({ ready: true, body: { ready: true } }),
  sessions: () => Promise.resolve({ sessions: [{ id: 'bot0', phone: '15550001111' }] }),
  metrics: () => Promise.resolve('wa_up 1\n'),
  ...overrides,
});

const waitUntil = async (condition: () => boolean, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('daemon HTTP (src/daemon/http.ts) on 127.0.0.1:0', () => {
  const servers: HttpServer[] = [];
  const sockets: Socket[] = [];
  const start = async (options: HttpOptions, r: HttpRoutes = routes()): Promise<HttpServer> => {
    const server = await startHttp({ host: '127.0.0.1', port: 0 }, r, options);
    servers.push(server);
    return server;
  };
  /** Opens `n` connections that never send a byte; resolves once all are connected or closed. */
  const idleSockets = async (url: string, n: number): Promise<Socket[]> => {
    const port = Number(new URL(url).port);
    const opened = await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(port, '127.0.0.1');
            socket.on('error', () => undefined); // a refused or evicted socket is the point here
            socket.resume(); // read, so a close by the server is seen
            socket.once('connect', () => resolve(socket));
            socket.once('close', () => resolve(socket));
          }),
      ),
    );
    sockets.push(...opened);
    return opened;
  };
  const openCount = (list: Socket[]): number => list.filter((s) => !s.destroyed && s.readyState === 'open').length;

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('judges loopback by address: 127.0.0.0/8, ::1 and localhost are, anything else is not', () => {
    for (const host of ['127.0.0.1', '127.9.8.7', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost'])
      expect(isLoopback(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '192.168.1.10', 'fe80::1', 'example.com', ''])
      expect(isLoopback(host), host).toBe(false);
  });

  it('matches a bearer token with the scheme in any case, nothing else', () => {
    for (const header of ['Bearer s3cret', 'bearer s3cret', 'BEARER s3cret', 'bEaReR  s3cret'])
      expect(bearerMatches(header, 's3cret'), header).toBe(true);
    for (const header of [
      undefined,
      '',
      's3cret',
      'Bearer',
      'Bearer ',
      'Bearer s3cre',
      'Bearer s3cretX',
      'Basic s3cret',
    ])
      expect(bearerMatches(header, 's3cret'), String(header)).toBe(false);
  });

  it('with a token: /healthz is open, every other route answers 401 JSON until the bearer token is given', async () => {
    const { url, exposure } = await start({ token: 's3cret' });
    expect(exposure).toBe('loopback');
    const health = await request(url, '/healthz');
    expect(health.status).toBe(200);
    expect(health.headers['cache-control']).toBe('no-store');
    for (const path of ['/readyz', '/sessions', '/metrics']) {
      const denied = await request(url, path, { headers: { authorization: 'Bearer nope' } });
      expect(denied.status, path).toBe(401);
      expect(denied.headers['www-authenticate']).toBe('Bearer');
      expect(denied.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(denied.body)).toEqual({ error: expect.any(String), code: 'E_UNAUTHORIZED' });
      expect(denied.body).not.toContain('15550001111');
      for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
        const ok = await request(url, path, { headers: { authorization: `${scheme} s3cret` } });
        expect(ok.status, `${scheme} ${path}`).toBe(200);
        expect(ok.headers['cache-control']).toBe('no-store');
      }
    }
    expect((await request(url, '/sessions')).status).toBe(401);
  });

  it('authenticates before routing, the method and the body: unauthenticated gets 401, never 404, 405 or 413', async () => {
    const { url } = await start({ token: 's3cret' });
    expect((await request(url, '/nope')).status).toBe(401);
    expect((await request(url, '/sessions', { method: 'POST', body: '{}' })).status).toBe(401);
    expect((await request(url, '/sessions', { method: 'DELETE' })).status).toBe(401);
    expect((await request(url, '/sessions', { method: 'POST', headers: { 'content-length': '1000000' } })).status).toBe(
      401,
    );

    const auth = { authorization: 'Bearer s3cret' };
    const missing = await request(url, '/nope', { headers: auth });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({ error: expect.any(String), code: 'E_NOT_FOUND' });
    const post = await request(url, '/sessions', { method: 'POST', headers: auth, body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(JSON.parse(post.body)).toEqual({ error: expect.any(String), code: 'E_METHOD' });
    expect((await request(url, '/healthz', { method: 'POST' })).status).toBe(405);
    const head = await request(url, '/sessions', { method: 'HEAD', headers: auth });
    expect([head.status, head.body]).toEqual([200, '']);
  });

  it('without a token: a loopback bind serves every route; a public one serves /healthz alone and 403 "set WA_API_TOKEN" elsewhere', async () => {
    const loopback = await start({ token: undefined });
    expect(loopback.exposure).toBe('loopback');
    for (const path of ['/readyz', '/sessions', '/metrics'])
      expect((await request(loopback.url, path)).status, path).toBe(200);

    // What a 0.0.0.0 or LAN-address bind answers, without exposing a test port beyond this machine.
    const exposed = await start({ token: undefined, public: true });
    expect(exposed.exposure).toBe('public');
    expect((await request(exposed.url, '/healthz')).status).toBe(200);
    for (const [path, method] of [
      ['/sessions', 'GET'],
      ['/metrics', 'GET'],
      ['/readyz', 'GET'],
      ['/nope', 'GET'],
      ['/sessions', 'POST'],
    ] as const) {
      const denied = await request(exposed.url, path, { method, headers: { authorization: 'Bearer anything' } });
      expect(denied.status, `${method} ${path}`).toBe(403);
      expect(denied.headers['cache-control']).toBe('no-store');
      const body = JSON.parse(denied.body) as { error: string; code: string };
      expect(body).toEqual({ error: expect.stringMatching(/^set WA_API_TOKEN/), code: 'E_TOKEN_REQUIRED' });
      expect(denied.body).not.toContain('15550001111');
    }

    // With a token, a public bind serves every route to whoever has it.
    const guarded = await start({ token: 's3cret', public: true });
    expect((await request(guarded.url, '/sessions', { headers: { authorization: 'bearer s3cret' } })).status).toBe(200);
    expect((await request(guarded.url, '/sessions')).status).toBe(401);
  });

  it('answers 413 to a body over 64 KiB, by its length or as it streams, and closes that connection', async () => {
    expect(HTTP_LIMITS.maxBodyBytes).toBe(64 * 1024);
    const { url } = await start({ token: 's3cret' });
    const auth = { authorization: 'Bearer s3cret' };
    const declared = await request(url, '/sessions', {
      method: 'POST',
      headers: { ...auth, 'content-length': String(64 * 1024 + 1) },
    });
    expect(declared.status).toBe(413);
    expect(declared.headers.connection).toBe('close');
    expect(JSON.parse(declared.body)).toEqual({ error: expect.any(String), code: 'E_TOO_LARGE' });
    const streamed = await request(url, '/sessions', { method: 'POST', headers: auth, body: { chunked: 70 * 1024 } });
    expect(streamed.status).toBe(413);
    expect(streamed.headers.connection).toBe('close');
    // Within the limit, a body is read (and ignored by these GET routes).
    const small = await request(url, '/sessions', { headers: auth, body: 'x'.repeat(64 * 1024) });
    expect(small.status).toBe(200);
  });

  it('answers a failing route with JSON: a typed error by its class, anything else a bare 500 with the details logged', async () => {
    const logged: unknown[] = [];
    const { url } = await start(
      { token: undefined, onError: (error) => logged.push(error) },
      routes({
        sessions: () => Promise.reject(new Error('boom at /var/lib/secret-path')),
        metrics: () => Promise.reject(storageError('E_DB_UNREACHABLE', 'cannot reach PostgreSQL')),
      }),
    );
    const crashed = await request(url, '/sessions');
    expect(crashed.status).toBe(500);
    expect(JSON.parse(crashed.body)).toEqual({ error: 'internal error', code: 'E_INTERNAL' });
    expect(logged).toHaveLength(1);
    const unavailable = await request(url, '/metrics');
    expect(unavailable.status).toBe(503);
    expect(JSON.parse(unavailable.body)).toEqual({ error: 'cannot reach PostgreSQL', code: 'E_DB_UNREACHABLE' });
  });

  it('sets 10 s header and request timeouts and closes a connection that sends nothing in time', async () => {
    const defaults = await start({ token: undefined });
    expect([defaults.headersTimeout, defaults.requestTimeout, defaults.keepAliveTimeout]).toEqual([
      10_000, 10_000, 5_000,
    ]);

    const { url } = await start({ token: undefined, limits: { headersTimeoutMs: 300, requestTimeoutMs: 300 } });
    const opened = Date.now();
    const [silent] = await idleSockets(url, 1);
    const partial = connect(Number(new URL(url).port), '127.0.0.1', () => partial.write('GET /healthz HTTP/1.1\r\n'));
    sockets.push(partial);
    partial.on('error', () => undefined).resume();
    await waitUntil(() => silent!.destroyed && partial.destroyed, 5000).catch((e: unknown) => {
      throw new Error(`silent ${silent!.destroyed} partial ${partial.destroyed}: ${String(e)}`);
    });
    expect(Date.now() - opened).toBeLessThan(2000);
  });

  it('caps connections: idle ones beyond the cap are closed oldest first, so a real request still gets through', async () => {
    const { url } = await start({ token: undefined, limits: { maxConnections: 10 } });
    const idle = await idleSockets(url, 40);
    await waitUntil(() => openCount(idle) <= 10);
    await new Promise((r) => setTimeout(r, 100));
    expect(openCount(idle)).toBe(10);
    expect(idle.slice(-10).every((s) => !s.destroyed)).toBe(true); // the newest survive
    expect((await request(url, '/sessions')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    expect(openCount(idle)).toBe(9); // the request's connection took the oldest idle one's place
  });

  it('refuses a new connection only when every connection under the cap is mid-request', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { url } = await start(
      { token: undefined, limits: { maxConnections: 3 } },
      routes({ sessions: () => held.then(() => ({ sessions: [] })) }),
    );
    const pending = [1, 2, 3].map(() => request(url, '/sessions'));
    await new Promise((r) => setTimeout(r, 200));
    await expect(request(url, '/healthz')).rejects.toThrow(); // nothing idle to make room: refused
    release();
    expect((await Promise.all(pending)).map((a) => a.status)).toEqual([200, 200, 200]);
    expect((await request(url, '/healthz')).status).toBe(200);
  });

  it('shares one read: concurrent callers wait on one, results are reused for the TTL, failures too', async () => {
    const clock = new ManualClock(0);
    let reads = 0;
    const gates: Array<{ resolve: (n: number) => void; reject: (error: Error) => void }> = [];
    const read = sharedRead(
      () =>
        new Promise<number>((resolve, reject) => {
          reads++;
          gates.push({ resolve, reject });
        }),
      1000,
      clock,
    );
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    const first = [read(), read(), read()];
    await tick();
    expect(reads).toBe(1);
    await clock.advance(1500); // slower than the TTL: still in flight, still shared, no second read
    const late = read();
    await tick();
    expect(reads).toBe(1);
    gates[0]!.resolve(1);
    expect(await Promise.all([...first, late])).toEqual([1, 1, 1, 1]);

    const second = read(); // started at 0, now 1500: expired
    await tick();
    expect(reads).toBe(2);
    gates[1]!.reject(new Error('db down'));
    await expect(second).rejects.toThrow('db down');
    await clock.advance(500); // a failure is reused too: a failing database is not hammered
    await expect(read()).rejects.toThrow('db down');
    expect(reads).toBe(2);
    await clock.advance(1000);
    const third = read();
    await tick();
    gates[2]!.resolve(3);
    expect([await third, await read(), reads]).toEqual([3, 3, 3]);
  });

  it('a flood of /sessions and /metrics requests (at least 2000, over 2.5 s) costs at most one read a second', async () => {
    let reads = 0;
    const snapshot = sharedRead(
      async () => {
        reads++;
        await new Promise((r) => setTimeout(r, 5)); // a database round trip
        return [{ id: 'bot0' }];
      },
      1000,
      systemClock,
    );
    const { url } = await start(
      { token: 's3cret' },
      routes({
        sessions: async () => ({ sessions: await snapshot() }),
        metrics: async () => `wa_sessions ${(await snapshot()).length}\n`,
      }),
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    const started = Date.now();
    const statuses: number[] = [];
    // At least 2000 requests and 2.5 s, so the cache is seen both holding and refreshing.
    while (statuses.length < 2000 || Date.now() - started < 2500) {
      const batch = await Promise.all(
        Array.from({ length: 250 }, (_, i) =>
          request(url, i % 2 === 0 ? '/sessions' : '/metrics', { headers: { authorization: 'Bearer s3cret' }, agent }),
        ),
      );
      statuses.push(...batch.map((a) => a.status));
    }
    const elapsed = Date.now() - started;
    agent.destroy();
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect(reads).toBeGreaterThanOrEqual(2); // refreshed, not stale for ever
    expect(reads, `${reads} reads in ${elapsed} ms`).toBeLessThanOrEqual(Math.floor(elapsed / 1000) + 1);
    console.info(`flood: ${statuses.length} requests in ${elapsed} ms, ${reads} reads`);
  });
});
