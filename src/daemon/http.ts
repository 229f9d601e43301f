import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BlockList, type Socket } from 'node:net';
import type { Clock } from '../clock.js';
import { usageError } from '../errors.js';
import { parsePhone } from '../phone.js';
import type { MessageRoutes } from './http-messages.js';
import {
  failure,
  invalid,
  isReply,
  json,
  jsonObject,
  problem,
  sessionIdFrom,
  type Handler,
  type Reply,
  type Route,
} from './http-reply.js';
import type { PairingEvent, PairMethod } from './pairing.js';

export interface HttpRoutes {
  /** 200 when every paired session this process may own is open or waiting for another live owner, 503 otherwise. */
  ready(): Promise<{ ready: boolean; body: unknown }>;
  sessions(): Promise<unknown>;
  metrics(): Promise<string>;
  /** Sessions and pairing (README "The daemon", HTTP); without it those routes do not exist. */
  api?: SessionApi | undefined;
  /** Sending, reading messages and the event log (README "HTTP API"); without it those routes do not exist. */
  messages?: MessageRoutes | undefined;
}

/** What the session and pairing routes do; src/commands/serve.ts wires them to the store and src/daemon/pairing.ts. */
export interface SessionApi {
  /** `POST /sessions` → 201 with the session. */
  create(id: string, label: string | null): Promise<unknown>;
  /** `DELETE /sessions/{id}` (`?force=1` also removes a paired one) → 200. */
  remove(id: string, force: boolean): Promise<unknown>;
  /** `POST /sessions/{id}/pair` → 202. */
  pair(id: string, method: PairMethod): Promise<unknown>;
  /** `DELETE /sessions/{id}/pair` → 200. */
  cancelPair(id: string): Promise<unknown>;
  /** `GET /sessions/{id}/pair`: follows the pairing (undefined: none to follow → 404). */
  follow(id: string, onEvent: (event: PairingEvent) => void, onEnd: () => void): (() => void) | undefined;
  /** `GET /sessions/{id}/pair/qr.svg`: the QR on screen now as SVG (undefined → 404). */
  qrSvg(id: string): Promise<string | undefined>;
}

export interface HttpAddress {
  host: string;
  port: number;
}

/** What a slow or hostile client may hold: time, bytes and sockets. */
export interface HttpLimits {
  /** Complete request headers within this long of the connection (or of the previous response). */
  headersTimeoutMs: number;
  /** The whole request, body included. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Open connections at most; beyond it the oldest idle one makes room, or the newcomer is refused. */
  maxConnections: number;
  /** Larger request bodies are answered 413 (and the connection closed) without being read. */
  maxBodyBytes: number;
}

export const HTTP_LIMITS: Readonly<HttpLimits> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 256,
  maxBodyBytes: 64 * 1024,
};

export interface HttpOptions {
  /** `WA_API_TOKEN` (never empty: config refuses that). Undefined: no token. */
  token: string | undefined;
  /**
   * Answer as a non-loopback bind would, whatever the address (tests; a proxy on the same host forwarding
   * to a loopback bind). It can only restrict: a public bind is never treated as loopback.
   */
  public?: boolean | undefined;
  limits?: Partial<HttpLimits> | undefined;
  /** A route that failed unexpectedly: the client gets a bare 500, the details go here. */
  onError?: ((error: unknown) => void) | undefined;
  /** Attempts per client address and minute: logins (a guessed token) and pairing-code requests. */
  rateLimits?: Partial<RateLimits> | undefined;
  /** How long a page login lasts. */
  cookieTtlMs?: number | undefined;
  clock?: Pick<Clock, 'now'> | undefined;
}

export interface RateLimits {
  loginsPerMinute: number;
  pairingCodesPerMinute: number;
}

export const RATE_LIMITS: Readonly<RateLimits> = { loginsPerMinute: 5, pairingCodesPerMinute: 5 };

export type Exposure = 'loopback' | 'public';
export type HttpServer = Server & { url: string; exposure: Exposure };

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (and IPv4-mapped 127/8), or the name localhost. Anything else counts as reachable from outside. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (/^localhost\.?$/i.test(bare)) return true;
  try {
    return bare.includes(':') ? LOOPBACK.check(bare, 'ipv6') : LOOPBACK.check(bare, 'ipv4');
  } catch {
    return false; // not an IP literal (a host name): not known to be loopback
  }
}

/** Digests, so the comparison takes the same time whatever the length of what was sent. */
const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** `Authorization: Bearer <token>`, the scheme case-insensitive (RFC 9110 §11.1). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^bearer +(.+)$/i.exec(header ?? '');
  // Compared even when the header is malformed, so a wrong scheme costs the same as a wrong token.
  const ok = timingSafeEqual(digest(match?.[1] ?? ''), digest(token));
  return match !== null && ok;
}

/**
 * One read shared by every caller: at most one in flight, and its result (or failure) reused for `ttlMs`
 * after it started. So however many requests ask, the database sees at most one read per `ttlMs`, and on
 * PostgreSQL HTTP traffic holds at most one pool connection, never the ones lease renewals need.
 */
export function sharedRead<T>(read: () => Promise<T>, ttlMs: number, clock: Pick<Clock, 'now'>): () => Promise<T> {
  let current: { startedAt: number; settled: boolean; value: Promise<T> } | undefined;
  return () => {
    if (current && (!current.settled || clock.now() - current.startedAt < ttlMs)) return current.value;
    const entry = { startedAt: clock.now(), settled: false, value: Promise.resolve().then(read) };
    const settle = (): void => void (entry.settled = true);
    entry.value.then(settle, settle);
    current = entry;
    return entry.value;
  };
}

/** At most `max` events per key in any `windowMs` (a sliding window of timestamps, pruned as it goes). */
export class RateLimiter {
  private readonly hits = new Map<string, number[]>();
  private readonly max: number;
  private readonly windowMs: number;
  private readonly clock: Pick<Clock, 'now'>;

  constructor(max: number, windowMs: number, clock: Pick<Clock, 'now'>) {
    this.max = max;
    this.windowMs = windowMs;
    this.clock = clock;
  }

  /** Counts one attempt; returns the seconds to wait when it is over the limit (and then it is not counted). */
  take(key: string): number | undefined {
    const now = this.clock.now();
    const recent = (this.hits.get(key) ?? []).filter((at) => now - at < this.windowMs);
    if (recent.length >= this.max) {
      this.hits.set(key, recent);
      return Math.max(1, Math.ceil((recent[0]! + this.windowMs - now) / 1000));
    }
    recent.push(now);
    this.hits.set(key, recent);
    if (this.hits.size > 10_000) this.hits.delete(this.hits.keys().next().value!); // bounded memory
    return undefined;
  }
}

export const COOKIE_NAME = 'wa_session';

/**
 * Page logins: a random id in an HttpOnly cookie, mapped here to an expiry. The cookie never holds the
 * token (README "Pairing page"), so a stolen cookie dies with the daemon or its expiry, and a restart
 * logs everybody out.
 */
class CookieSessions {
  private readonly expiries = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly clock: Pick<Clock, 'now'>;

  constructor(ttlMs: number, clock: Pick<Clock, 'now'>) {
    this.ttlMs = ttlMs;
    this.clock = clock;
  }

  create(): string {
    const id = randomBytes(32).toString('base64url');
    this.expiries.set(id, this.clock.now() + this.ttlMs);
    if (this.expiries.size > 1000) this.expiries.delete(this.expiries.keys().next().value!);
    return id;
  }

  valid(cookieHeader: string | undefined): boolean {
    const id = cookieValue(cookieHeader, COOKIE_NAME);
    if (id === undefined) return false;
    const expiresAt = this.expiries.get(id);
    if (expiresAt === undefined) return false;
    if (expiresAt <= this.clock.now()) {
      this.expiries.delete(id);
      return false;
    }
    return true;
  }

  revoke(cookieHeader: string | undefined): void {
    const id = cookieValue(cookieHeader, COOKIE_NAME);
    if (id !== undefined) this.expiries.delete(id);
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/**
 * Whether a browser request comes from our own page: its `Origin` names the host it was sent to. A
 * foreign page cannot forge `Origin` (the browser sets it), so a state change it triggers is refused.
 * `Origin: null` (opaque origins, `Referrer-Policy: no-referrer` pages) is refused too.
 */
export function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** Headers every answer carries; the pages need all of them, the JSON routes lose nothing by them. */
const SECURITY_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  // Strict: no inline script or style, nothing from elsewhere, never framed, forms post only here.
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
  'x-frame-options': 'DENY',
  // Not no-referrer: browsers then send `Origin: null` on the page's own POSTs, which the Origin check refuses.
  'referrer-policy': 'same-origin',
};

/** The pairing page's files (src/daemon/page/, copied next to this module by `npm run build`). */
interface PageFiles {
  login: string;
  app: string;
  assets: Map<string, { body: string; type: string; public: boolean }>;
  off: string;
}

let pageFiles: PageFiles | undefined;
function loadPage(): PageFiles {
  if (pageFiles) return pageFiles;
  const read = (name: string): string => readFileSync(new URL(`./page/${name}`, import.meta.url), 'utf8');
  pageFiles = {
    login: read('login.html'),
    app: read('index.html'),
    off: read('off.html'),
    assets: new Map([
      // The stylesheet serves the login page too, so it needs no login; it holds nothing but looks.
      ['/assets/style.css', { body: read('style.css'), type: 'text/css', public: true }],
      ['/assets/app.js', { body: read('app.js'), type: 'text/javascript', public: false }],
    ]),
  };
  return pageFiles;
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const html = (status: number, body: string, headers?: Record<string, string>): Reply => ({
  status,
  body,
  type: 'text/html',
  ...(headers ? { headers } : {}),
});

const hasBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/**
 * The body; 'too-large' once it passes `max` bytes (the rest is left unread, and the connection is closed
 * after the answer); 'aborted' when the client went away first. Read by hand rather than with `for await`,
 * whose early exit destroys the request, and with it the socket the 413 is to be written to.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too-large' | 'aborted'> {
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.resolve('too-large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: Buffer | 'too-large' | 'aborted'): void => {
      req.off('data', onData).off('end', onEnd).off('close', onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      req.pause();
      finish('too-large');
    };
    const onEnd = (): void => finish(Buffer.concat(chunks));
    const onClose = (): void => finish('aborted');
    req.on('data', onData).on('end', onEnd).on('close', onClose);
  });
}

/**
 * Caps open connections at `max` without letting idle ones lock everybody out: at the cap, a new
 * connection closes the connection idle longest (one that has not sent a complete request yet, or a
 * keep-alive one between requests); failing that, it asks the long-poll parked longest to answer now
 * (as if its wait ran out, then closing its connection); only when every connection is mid-request
 * otherwise is the newcomer refused. A client that opens sockets and sends nothing, or parks long-polls
 * on all of them, thus costs others nothing but its own sockets: /healthz always gets through.
 */
function capConnections(server: Server, max: number): { park: (socket: Socket, release: () => void) => () => void } {
  /** Requests in flight per socket; insertion order is the order they last became idle. */
  const open = new Map<Socket, number>();
  /** Sockets whose request is a parked long-poll, oldest first, with how to make it answer now. */
  const parked = new Map<Socket, () => void>();
  server.on('connection', (socket: Socket) => {
    if (open.size >= max) {
      let idle: Socket | undefined;
      for (const [candidate, inFlight] of open) {
        if (inFlight === 0) {
          idle = candidate;
          break;
        }
      }
      if (idle) {
        open.delete(idle);
        idle.destroy();
      } else {
        const [oldest] = parked;
        if (!oldest) return void socket.destroy();
        parked.delete(oldest[0]);
        oldest[1](); // it answers and closes: the newcomer takes its place
      }
    }
    open.set(socket, 0);
    socket.once('close', () => open.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const inFlight = open.get(socket);
    if (inFlight === undefined) return; // already closed or evicted
    open.set(socket, inFlight + 1);
    res.once('close', () => {
      const now = open.get(socket);
      if (now === undefined || socket.destroyed) return;
      open.delete(socket); // re-inserted at the end: idle since now
      open.set(socket, now - 1);
    });
  });
  // The backstop for a burst: sockets destroyed above are only counted out by Node once they close.
  server.maxConnections = max + 64;
  return {
    park: (socket, release) => {
      parked.set(socket, release);
      return () => {
        if (parked.get(socket) === release) parked.delete(socket);
      };
    },
  };
}

const notAllowedOn = (method: string, path: string, allowed: string[]): Reply =>
  problem(405, 'E_METHOD', `${method} is not allowed on ${path}`, { allow: allowed.join(', ') });

const tooMany = (waitSeconds: number, what: string): Reply =>
  problem(429, 'E_RATE_LIMITED', `too many ${what}: try again in ${waitSeconds}s`, {
    'retry-after': String(waitSeconds),
  });

/** The socket's peer: behind a proxy every client shares one, which only makes the limits stricter. */
const clientAddress = (req: IncomingMessage): string => req.socket.remoteAddress ?? 'unknown';

const safeDecode = (segment: string): string => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
};

function loginPage(page: PageFiles, status: number, error?: string, headers?: Record<string, string>): Reply {
  const message = error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(error)}</p>`;
  return html(status, page.login.replace('<!--error-->', message), headers);
}

/** `POST /sessions` `{"id","label"?}` → 201. */
function createSession(api: SessionApi): Handler {
  return async ({ req, body }) => {
    const parsed = jsonObject(req, body);
    if (isReply(parsed)) return parsed;
    const id = sessionIdFrom(parsed.id, 'id');
    if (isReply(id)) return id;
    const label = parsed.label ?? null;
    if (label !== null && (typeof label !== 'string' || label.length > 200)) {
      return invalid('label', 'must be a string of at most 200 characters');
    }
    return json(201, await api.create(id, label));
  };
}

/**
 * `GET /sessions/{id}/pair`: Server-Sent Events, one `data: <json>` per pairing event. Plain messages,
 * no `event:` names: an event named `open` or `error` would be taken for EventSource's own. A comment
 * every 15 s keeps proxies from closing an idle stream.
 */
function followPairing(api: SessionApi, id: string): Reply {
  const events: PairingEvent[] = [];
  let ended = false;
  let sink: ServerResponse | undefined;
  const write = (event: PairingEvent): void => {
    if (sink) sink.write(`data: ${JSON.stringify(event)}\n\n`);
    else events.push(event);
  };
  const unsubscribe = api.follow(id, write, () => {
    ended = true;
    sink?.end();
  });
  if (!unsubscribe) return problem(404, 'E_NOT_PAIRING', `session '${id}' is not being paired`);
  return {
    status: 200,
    body: '',
    type: 'text/event-stream',
    headers: { 'x-accel-buffering': 'no' },
    stream: (res) => {
      sink = res;
      res.write(': pairing events\n\n');
      for (const event of events.splice(0)) write(event);
      if (ended) return void res.end();
      const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
      res.once('close', () => {
        clearInterval(ping);
        unsubscribe();
      });
    },
  };
}

/**
 * The daemon's HTTP face: /healthz (process alive), /readyz, /sessions, /metrics, the session and pairing
 * routes, the message and event routes (src/daemon/http-messages.ts), and the pairing page. Authentication comes first, before the body, the route and the method are
 * looked at, so an unauthenticated client learns nothing but 401/403: with a token, every route but
 * /healthz (and the page's login) needs `Authorization: Bearer <token>` or the page's session cookie;
 * without one, a loopback bind serves everything (only local processes reach it) and any other bind
 * serves /healthz alone, answering 403 elsewhere. Whether a bind is loopback is judged on the address
 * actually bound, so a host name resolving to a public address counts as public. A state-changing
 * request from a browser must carry our own `Origin`; one without `Origin` needs the bearer token (a
 * browser always sends `Origin` on POST and DELETE, so only non-browser clients omit it).
 */
export async function startHttp(address: HttpAddress, routes: HttpRoutes, options: HttpOptions): Promise<HttpServer> {
  const limits: HttpLimits = { ...HTTP_LIMITS, ...options.limits };
  const { token, onError } = options;
  const clock = options.clock ?? { now: () => Date.now() };
  const rates = { ...RATE_LIMITS, ...options.rateLimits };
  const logins = new RateLimiter(rates.loginsPerMinute, 60_000, clock);
  const codeRequests = new RateLimiter(rates.pairingCodesPerMinute, 60_000, clock);
  const cookies = new CookieSessions(options.cookieTtlMs ?? 12 * 60 * 60_000, clock);
  // The page is read once, at start (and only when it can be served): a missing file fails start, not a request.
  const page = token !== undefined ? loadPage() : undefined;
  let exposure: Exposure = 'public'; // until the bound address says otherwise

  /** method → handler, per path pattern; `{id}` is a session id segment. */
  const table: Route[] = [
    {
      pattern: /^\/readyz$/,
      methods: {
        GET: async () => {
          const { ready, body } = await routes.ready();
          return json(ready ? 200 : 503, body);
        },
      },
    },
    {
      pattern: /^\/sessions$/,
      methods: {
        GET: async () => json(200, await routes.sessions()),
        ...(routes.api ? { POST: createSession(routes.api) } : {}),
      },
    },
    {
      pattern: /^\/metrics$/,
      methods: {
        GET: async () => ({ status: 200, body: await routes.metrics(), type: 'text/plain; version=0.0.4' }),
      },
    },
  ];
  if (routes.api) {
    const api = routes.api;
    table.push(
      {
        pattern: /^\/sessions\/([^/]+)$/,
        methods: {
          DELETE: async ({ id, url }) =>
            json(200, await api.remove(id, ['1', 'true'].includes(url.searchParams.get('force') ?? ''))),
        },
      },
      {
        pattern: /^\/sessions\/([^/]+)\/pair$/,
        methods: {
          POST: async ({ id, req, body }) => {
            const parsed = jsonObject(req, body);
            if (isReply(parsed)) return parsed;
            let method: PairMethod;
            if (parsed.method === 'qr') method = { method: 'qr' };
            else if (parsed.method === 'code') {
              if (typeof parsed.phone !== 'string') return invalid('phone', 'must be a string of digits');
              try {
                method = { method: 'code', phone: parsePhone(parsed.phone, 'phone') };
              } catch (error) {
                return problem(400, 'E_PHONE', error instanceof Error ? error.message : String(error));
              }
              // WhatsApp limits pairing codes too; this keeps one client from spending the limit for everyone.
              const wait = codeRequests.take(clientAddress(req));
              if (wait !== undefined) return tooMany(wait, 'pairing codes');
            } else return invalid('method', 'must be "qr" or "code"');
            return json(202, await api.pair(id, method));
          },
          GET: ({ id }) => Promise.resolve(followPairing(api, id)),
          DELETE: async ({ id }) => json(200, await api.cancelPair(id)),
        },
      },
      {
        pattern: /^\/sessions\/([^/]+)\/pair\/qr\.svg$/,
        methods: {
          GET: async ({ id }) => {
            const svg = await api.qrSvg(id);
            if (svg === undefined) return problem(404, 'E_NO_QR', `no QR code is showing for session '${id}'`);
            return { status: 200, body: svg, type: 'image/svg+xml' };
          },
        },
      },
    );
  }
  if (routes.messages) table.push(...routes.messages.routes);

  /** `POST /login`: the token typed on the login page becomes a session cookie (303 back to the page). */
  const login = (req: IncomingMessage, body: Buffer | undefined): Reply => {
    if (!page || token === undefined) return problem(404, 'E_NOT_FOUND', 'no route /login');
    const wait = logins.take(clientAddress(req));
    if (wait !== undefined)
      return loginPage(page, 429, 'Too many attempts: wait a minute.', { 'retry-after': String(wait) });
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    let typed: unknown;
    if (type === 'application/x-www-form-urlencoded')
      typed = new URLSearchParams(body?.toString('utf8') ?? '').get('token');
    else if (type === 'application/json') {
      const parsed = jsonObject(req, body);
      typed = isReply(parsed) ? undefined : parsed.token;
    }
    if (typeof typed !== 'string' || !bearerMatches(`Bearer ${typed}`, token)) {
      return loginPage(page, 401, 'Wrong token.');
    }
    const secure = req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
    const maxAge = Math.round((options.cookieTtlMs ?? 12 * 60 * 60_000) / 1000);
    return {
      status: 303,
      body: '',
      type: 'text/plain',
      headers: {
        location: '/',
        'set-cookie': `${COOKIE_NAME}=${cookies.create()}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}${secure}`,
      },
    };
  };

  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above only this often (30 s by default), which would stretch them.
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    },
    (req, res) => {
      let bodyRead = !hasBody(req);
      // The client going away before its answer: a long-poll or a send's wait stops for nobody.
      const gone = new AbortController();
      let unpark: (() => void) | undefined;
      res.once('close', () => {
        unpark?.();
        if (!res.writableFinished) gone.abort();
      });
      /** Set when the connection cap asked a parked request to answer now: its connection then closes. */
      let evicted = false;
      const park = (): AbortSignal => {
        const release = new AbortController();
        unpark?.();
        unpark = cap.park(req.socket, () => {
          evicted = true;
          release.abort();
        });
        return release.signal;
      };
      const send = (reply: Reply): void => {
        unpark?.();
        if (res.headersSent || res.destroyed) return;
        const headers: Record<string, string> = {
          ...SECURITY_HEADERS,
          'content-type': `${reply.type ?? 'application/json'}; charset=utf-8`,
          ...reply.headers,
        };
        // A body left unread would be read and thrown away by Node to reuse the connection: close it instead.
        if (!bodyRead || evicted) headers.connection = 'close';
        res.writeHead(reply.status, headers);
        if (reply.stream && req.method !== 'HEAD') return reply.stream(res);
        res.end(reply.body);
      };
      const readWithin = async (): Promise<Buffer | undefined | Reply> => {
        if (bodyRead) return undefined;
        const body = await readBody(req, limits.maxBodyBytes);
        if (body === 'too-large') {
          return problem(413, 'E_TOO_LARGE', `request bodies are limited to ${limits.maxBodyBytes} bytes`);
        }
        if (body === 'aborted') return problem(400, 'E_ABORTED', 'the request was cut off'); // nobody to answer
        bodyRead = true;
        return body;
      };
      const handle = async (): Promise<Reply> => {
        const url = new URL(req.url ?? '/', 'http://wa.invalid');
        const path = url.pathname;
        const method = req.method ?? 'GET';
        const readOnly = method === 'GET' || method === 'HEAD';
        if (path === '/healthz') {
          return readOnly
            ? json(200, { status: 'ok' })
            : problem(405, 'E_METHOD', `${method} is not allowed on ${path}`, { allow: 'GET, HEAD' });
        }
        // README "Pairing page": a token never travels in a URL (it would land in logs and histories).
        if (url.searchParams.has('token') || url.searchParams.has('access_token')) {
          return problem(
            403,
            'E_TOKEN_IN_URL',
            'a token is never accepted in the URL: send Authorization: Bearer <token>',
          );
        }
        const origin = req.headers.origin;
        const foreignOrigin = origin !== undefined && !sameOrigin(origin, req.headers.host);

        if (
          page &&
          (path === '/' || path === '/login' || path === '/logout' || page.assets.get(path)?.public === true)
        ) {
          if (path === '/login' && method === 'POST') {
            if (foreignOrigin || origin === undefined) return problem(403, 'E_ORIGIN', 'cross-origin request refused');
            const body = await readWithin();
            return isReply(body) ? body : login(req, body);
          }
          if (path === '/logout' && method === 'POST') {
            if (foreignOrigin) return problem(403, 'E_ORIGIN', 'cross-origin request refused');
            cookies.revoke(req.headers.cookie);
            return {
              status: 303,
              body: '',
              type: 'text/plain',
              headers: { location: '/', 'set-cookie': `${COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` },
            };
          }
          if (path === '/' && readOnly) {
            return cookies.valid(req.headers.cookie) ? html(200, page.app) : loginPage(page, 200);
          }
          const asset = page.assets.get(path);
          if (asset && readOnly) return { status: 200, body: asset.body, type: asset.type };
        }
        if (token === undefined && path === '/' && readOnly) {
          // The page logs in with the token: with none configured it is off, and says how to turn it on.
          return html(403, loadPage().off);
        }

        if (token === undefined && (exposure === 'public' || options.public === true)) {
          return problem(
            403,
            'E_TOKEN_REQUIRED',
            'set WA_API_TOKEN to use this route: without a token only /healthz is served on a non-loopback address',
          );
        }
        const bearer = token !== undefined && bearerMatches(req.headers.authorization, token);
        const cookie = !bearer && token !== undefined && cookies.valid(req.headers.cookie);
        if (token !== undefined && !bearer && !cookie) {
          return problem(401, 'E_UNAUTHORIZED', 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
        }
        // A browser's state-changing request must come from our page; without Origin only a bearer token
        // (or, with no token, a loopback client) can make one: a cookie alone is what CSRF rides on.
        if (!readOnly && (foreignOrigin || (origin === undefined && cookie))) {
          return problem(403, 'E_ORIGIN', 'cross-origin request refused');
        }

        const body = await readWithin();
        if (isReply(body)) return body;

        if (page) {
          const asset = page.assets.get(path);
          if (asset)
            return readOnly
              ? { status: 200, body: asset.body, type: asset.type }
              : notAllowedOn(method, path, ['GET', 'HEAD']);
        }
        for (const route of table) {
          const match = route.pattern.exec(path);
          if (!match) continue;
          const allowed = Object.keys(route.methods);
          const handler = route.methods[method === 'HEAD' ? 'GET' : method];
          if (!handler) return notAllowedOn(method, path, allowed.includes('GET') ? [...allowed, 'HEAD'] : allowed);
          let id = '';
          if (match[1] !== undefined) {
            const checked = sessionIdFrom(safeDecode(match[1]), 'id');
            if (isReply(checked)) return checked;
            id = checked;
          }
          const params = match.slice(2).map((segment) => safeDecode(segment ?? ''));
          return handler({ id, params, url, body, req, signal: gone.signal, park });
        }
        return problem(404, 'E_NOT_FOUND', `no route ${path}`);
      };
      handle().then(send, (error: unknown) => send(failure(error, onError)));
    },
  );
  const cap = capConnections(server, limits.maxConnections);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: NodeJS.ErrnoException) => {
    throw usageError('E_HTTP', `cannot listen on ${address.host}:${address.port}: ${error.code ?? error.message}`, {
      cause: error,
    });
  });
  const bound = server.address();
  if (typeof bound === 'object' && bound !== null && isLoopback(bound.address) && options.public !== true) {
    exposure = 'loopback';
  }
  const port = typeof bound === 'object' && bound ? bound.port : address.port;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return Object.assign(server, { url: `http://${host}:${port}`, exposure });
}
