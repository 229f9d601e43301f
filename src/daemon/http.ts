import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BlockList, type Socket } from 'node:net';
import type { Clock } from '../clock.js';
import { ExitCode, isWaError, usageError } from '../errors.js';

export interface HttpRoutes {
  /** 200 when every paired session this process may own is open or waiting for another live owner, 503 otherwise. */
  ready(): Promise<{ ready: boolean; body: unknown }>;
  sessions(): Promise<unknown>;
  metrics(): Promise<string>;
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
}

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

interface Reply {
  status: number;
  body: string;
  type?: string;
  headers?: Record<string, string>;
}

const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body: `${JSON.stringify(body)}\n`,
  ...(headers ? { headers } : {}),
});
const problem = (status: number, code: string, error: string, headers?: Record<string, string>): Reply =>
  json(status, { error, code }, headers);

/** The HTTP status of each exit-code class (README "The daemon", HTTP). */
function failure(error: unknown, onError: HttpOptions['onError']): Reply {
  if (isWaError(error)) {
    const status =
      error.exitCode === ExitCode.usage
        ? 400
        : error.exitCode === ExitCode.notPaired || error.exitCode === ExitCode.busy
          ? 409
          : error.exitCode === ExitCode.unavailable || error.exitCode === ExitCode.storage
            ? 503
            : 500;
    return problem(status, error.code, error.message);
  }
  onError?.(error);
  // An unexpected error's message may carry anything (a path, a query): it stays in the log.
  return problem(500, 'E_INTERNAL', 'internal error');
}

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
 * keep-alive one between requests); only when every connection is mid-request is the newcomer refused.
 * A client that opens sockets and sends nothing thus costs others nothing but its own sockets.
 */
function capConnections(server: Server, max: number): void {
  /** Requests in flight per socket; insertion order is the order they last became idle. */
  const open = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    if (open.size >= max) {
      let idle: Socket | undefined;
      for (const [candidate, inFlight] of open) {
        if (inFlight === 0) {
          idle = candidate;
          break;
        }
      }
      if (!idle) return void socket.destroy();
      open.delete(idle);
      idle.destroy();
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
}

/**
 * The daemon's HTTP face: /healthz (process alive), /readyz, /sessions, /metrics; GET and HEAD only.
 * Authentication comes first, before the body, the route and the method are looked at, so an
 * unauthenticated client learns nothing but 401/403: with a token, every route but /healthz needs
 * `Authorization: Bearer <token>`; without one, a loopback bind serves everything (only local processes
 * reach it) and any other bind serves /healthz alone, answering 403 elsewhere. Whether a bind is loopback
 * is judged on the address actually bound, so a host name resolving to a public address counts as public.
 */
export async function startHttp(address: HttpAddress, routes: HttpRoutes, options: HttpOptions): Promise<HttpServer> {
  const limits: HttpLimits = { ...HTTP_LIMITS, ...options.limits };
  const { token, onError } = options;
  let exposure: Exposure = 'public'; // until the bound address says otherwise

  const table = new Map<string, () => Promise<Reply>>([
    [
      '/readyz',
      async () => {
        const { ready, body } = await routes.ready();
        return json(ready ? 200 : 503, body);
      },
    ],
    ['/sessions', async () => json(200, await routes.sessions())],
    ['/metrics', async () => ({ status: 200, body: await routes.metrics(), type: 'text/plain; version=0.0.4' })],
  ]);

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
      const send = (reply: Reply): void => {
        if (res.headersSent || res.destroyed) return;
        const headers: Record<string, string> = {
          'content-type': `${reply.type ?? 'application/json'}; charset=utf-8`,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          ...reply.headers,
        };
        // A body left unread would be read and thrown away by Node to reuse the connection: close it instead.
        if (!bodyRead) headers.connection = 'close';
        res.writeHead(reply.status, headers);
        res.end(reply.body);
      };
      const handle = async (): Promise<Reply> => {
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        const method = req.method ?? 'GET';
        const readOnly = method === 'GET' || method === 'HEAD';
        const notAllowed = (): Reply =>
          problem(405, 'E_METHOD', `${method} is not allowed on ${path}`, { allow: 'GET, HEAD' });
        if (path === '/healthz') return readOnly ? json(200, { status: 'ok' }) : notAllowed();

        if (token === undefined && (exposure === 'public' || options.public === true)) {
          return problem(
            403,
            'E_TOKEN_REQUIRED',
            'set WA_API_TOKEN to use this route: without a token only /healthz is served on a non-loopback address',
          );
        }
        if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
          return problem(401, 'E_UNAUTHORIZED', 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
        }

        if (!bodyRead) {
          const body = await readBody(req, limits.maxBodyBytes);
          if (body === 'too-large') {
            return problem(413, 'E_TOO_LARGE', `request bodies are limited to ${limits.maxBodyBytes} bytes`);
          }
          if (body === 'aborted') return problem(400, 'E_ABORTED', 'the request was cut off'); // nobody to answer
          bodyRead = true; // none of these routes takes a body: read within the limit, and ignored
        }

        const route = table.get(path);
        if (!route) return problem(404, 'E_NOT_FOUND', `no route ${path}`);
        if (!readOnly) return notAllowed();
        return route();
      };
      handle().then(send, (error: unknown) => send(failure(error, onError)));
    },
  );
  capConnections(server, limits.maxConnections);

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
