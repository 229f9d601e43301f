import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { usageError } from '../errors.js';

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

const tokenMatches = (header: string | undefined, token: string): boolean => {
  const given = Buffer.from(header ?? '');
  const wanted = Buffer.from(`Bearer ${token}`);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
};

/**
 * The daemon's HTTP face: /healthz (process alive), /readyz, /sessions, /metrics. With a token, every
 * route but /healthz needs `Authorization: Bearer <token>`. Answers only GET; nothing here changes state.
 */
export async function startHttp(
  address: HttpAddress,
  routes: HttpRoutes,
  token: string | undefined,
): Promise<Server & { url: string }> {
  const server = createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json'): void => {
      res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
      res.end(body);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, '{"error":"method not allowed"}\n');
    if (path === '/healthz') return send(200, '{"status":"ok"}\n');
    if (token !== undefined && !tokenMatches(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(401, '{"error":"unauthorized"}\n');
    }
    const route =
      path === '/readyz'
        ? routes.ready().then(({ ready, body }) => send(ready ? 200 : 503, `${JSON.stringify(body)}\n`))
        : path === '/sessions'
          ? routes.sessions().then((body) => send(200, `${JSON.stringify(body)}\n`))
          : path === '/metrics'
            ? routes.metrics().then((text) => send(200, text, 'text/plain; version=0.0.4'))
            : Promise.resolve(send(404, '{"error":"not found"}\n'));
    route.catch((error: unknown) =>
      send(500, `${JSON.stringify({ error: error instanceof Error ? error.message : 'internal error' })}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  }).catch((error: NodeJS.ErrnoException) => {
    throw usageError('E_HTTP', `cannot listen on ${address.host}:${address.port}: ${error.code ?? error.message}`, {
      cause: error,
    });
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : address.port;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return Object.assign(server, { url: `http://${host}:${port}` });
}
