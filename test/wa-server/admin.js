// @ts-check
/**
 * Small HTTP admin endpoint for a TestServer running in another process (see cli.js).
 * Separate listener from the WebSocket one, so it stays reachable during refuseConnections()
 * and restart(). Loopback only.
 *
 *   GET  /state                 → { url, port, rootPublicKey, certMode, connections, openConnections, devices, pendingPairingCodes }
 *   GET  /devices               → devices()
 *   GET  /connection-log        → connectionLog()
 *   POST /scan-qr               { qr, phone?: { number?, name? } }      → { jid, lid }
 *   POST /enter-pairing-code    { code, phoneNumber? }                   → { jid, lid }
 *   POST /drop                  { jid? }                                 → { count }
 *   POST /silence               { jid?, stopReading? }                   → { count }
 *   POST /conflict              { jid }                                  → { count }
 *   POST /remove-device         { jid }                                  → { count }
 *   POST /reject-version        { on }
 *   POST /refuse-connections    { ms, mode?: 'reset'|'close' }
 *   POST /http-error-on-upgrade { status: number|null }
 *   POST /cert-mode             { mode }
 *   POST /forge-account-signature { on }
 *   POST /restart               { downMs? }
 *   POST /wait-for-device       { jid?, phone?, online?, timeoutMs? }   → resolves when such a device exists (and is online/offline if given)
 *
 * Errors: HTTP 400 with { error: message }.
 */
import http from 'node:http';

/**
 * @param {import('./server.js').TestServer} server
 * @param {{ host?: string, port?: number }} [opts]
 * @returns {Promise<{ url: string, port: number, close(): Promise<void> }>}
 */
export async function startAdminServer(server, opts = {}) {
  const host = opts.host ?? '127.0.0.1';
  /** @type {Record<string, (body: any) => unknown>} */
  const routes = {
    'GET /state': () => ({
      url: server.url,
      port: server.port,
      rootPublicKey: server.rootPublicKeyBase64,
      certMode: server.certMode,
      connections: server.connections(),
      openConnections: server.openConnections(),
      devices: server.devices(),
      pendingPairingCodes: server.pendingPairingCodes(),
    }),
    'GET /devices': () => server.devices(),
    'GET /connection-log': () => server.connectionLog(),
    'POST /scan-qr': (b) => server.scanQr(String(b.qr), b.phone ?? {}),
    'POST /enter-pairing-code': (b) => server.enterPairingCode(String(b.code), b.phoneNumber),
    'POST /drop': (b) => ({ count: server.drop(b.jid) }),
    'POST /silence': (b) => ({ count: server.silence(b.jid, { stopReading: !!b.stopReading }) }),
    'POST /conflict': (b) => ({ count: server.conflict(String(b.jid)) }),
    'POST /remove-device': (b) => ({ count: server.removeDevice(String(b.jid)) }),
    'POST /reject-version': (b) => server.rejectVersion(!!b.on),
    'POST /refuse-connections': (b) => server.refuseConnections(Number(b.ms), { mode: b.mode }),
    'POST /http-error-on-upgrade': (b) => server.httpErrorOnUpgrade(b.status ?? null),
    'POST /cert-mode': (b) => {
      server.certMode = b.mode;
    },
    'POST /forge-account-signature': (b) => {
      server.forgeAccountSignature = b.on === undefined ? true : !!b.on;
    },
    'POST /restart': (b) => server.restart(Number(b.downMs ?? 0)),
    'POST /wait-for-device': (b) =>
      server
        .waitFor(
          () =>
            server
              .devices()
              .some(
                (d) =>
                  (!b.jid || d.jid === b.jid) &&
                  (!b.phone || d.phone === String(b.phone)) &&
                  (b.online === undefined || d.online === !!b.online),
              ),
          Number(b.timeoutMs ?? 10000),
        )
        .then(() => server.devices()),
  };
  const http_ = http.createServer(async (req, res) => {
    const key = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    const route = routes[key];
    const reply = (/** @type {number} */ status, /** @type {unknown} */ body) => {
      res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify(body ?? { ok: true }));
    };
    if (!route) return reply(404, { error: `no route ${key}` });
    try {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const body = raw ? JSON.parse(raw) : {};
      reply(200, await route(body));
    } catch (err) {
      reply(400, { error: /** @type {Error} */ (err).message });
    }
  });
  await new Promise((resolve, reject) => {
    http_.once('error', reject);
    http_.listen({ host, port: opts.port ?? 0 }, () => resolve(undefined));
  });
  const port = /** @type {import('node:net').AddressInfo} */ (http_.address()).port;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise((resolve) => {
        http_.close(() => resolve(undefined));
        http_.closeAllConnections();
      }),
  };
}
