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
 * Messaging (see README "Messaging"):
 *   GET  /message-log | POST /message-log { device?, tag?, dir?, id? }   → messageLog(filter)
 *   POST /wait-message-log      { device?, tag?, dir?, id?, count?, timeoutMs? } → the entries, once at least count (1) match
 *   POST /queued                { jid }                                  → queued(jid)
 *   POST /phone/send            { phone, to, text, id?, fresh? }         → { id, to, devices }
 *   POST /phone/messages        { phone }    /phone/receipts /phone/failures /phone/acks
 *   POST /phone/wait-message    { phone, id?, text?, fromMe?, timeoutMs? } → the first matching decrypted message
 *   POST /phone/read            { phone, ids }                           → { count }
 *   POST /fault/ack-error       { jid?, code? (463), count? (1) }
 *   POST /fault/drop-before-ack { jid?, deliver? (true) }
 *   POST /fault/duplicate       { jid?, mode?: 'twice'|'after-reconnect' }
 *   POST /fault/corrupt         { jid? }
 *   POST /fault/hold-receipts   { jid? }
 *   POST /fault/release-receipts { jid? }                                → { count }
 *   POST /fault/lid-migrated    { number, on? (true) }
 *   POST /fault/clear                                                    → { count } (held receipts forwarded)
 *
 * Errors: HTTP 400 with { error: message }.
 */
import http from 'node:http';

/** @param {any} b @returns {{ device?: string, tag?: 'message'|'receipt'|'ack', dir?: 'in'|'out', id?: string }} */
function logFilter(b) {
  return {
    ...(b.device ? { device: String(b.device) } : {}),
    ...(b.tag ? { tag: b.tag } : {}),
    ...(b.dir ? { dir: b.dir } : {}),
    ...(b.id ? { id: String(b.id) } : {}),
  };
}

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
    'GET /message-log': () => server.messageLog(),
    'POST /message-log': (b) => server.messageLog(logFilter(b)),
    'POST /wait-message-log': async (b) => {
      const filter = logFilter(b);
      const count = Number(b.count ?? 1);
      await server.waitFor(() => server.messageLog(filter).length >= count, Number(b.timeoutMs ?? 10000));
      return server.messageLog(filter);
    },
    'POST /queued': (b) => server.queued(String(b.jid)),
    'POST /phone/send': (b) =>
      server.sendFromPhone(String(b.phone), String(b.to), String(b.text), {
        ...(b.id ? { id: String(b.id) } : {}),
        ...(b.fresh ? { fresh: true } : {}),
      }),
    'POST /phone/messages': (b) => server.phoneMessages(String(b.phone)),
    'POST /phone/receipts': (b) => server.phoneReceipts(String(b.phone)),
    'POST /phone/failures': (b) => server.phoneFailures(String(b.phone)),
    'POST /phone/acks': (b) => server.phoneAcks(String(b.phone)),
    'POST /phone/wait-message': async (b) => {
      const phone = String(b.phone);
      const match = () =>
        server
          .phoneMessages(phone)
          .find(
            (m) =>
              (b.id === undefined || m.id === b.id) &&
              (b.text === undefined || m.text === b.text) &&
              (b.fromMe === undefined || m.fromMe === !!b.fromMe),
          );
      await server.waitFor(() => !!match(), Number(b.timeoutMs ?? 10000));
      return match();
    },
    'POST /phone/read': (b) => ({ count: server.phoneRead(String(b.phone), (b.ids ?? []).map(String)) }),
    'POST /fault/ack-error': (b) =>
      server.failNextAck(b.jid, { code: b.code === undefined ? 463 : Number(b.code), count: Number(b.count ?? 1) }),
    'POST /fault/drop-before-ack': (b) => server.dropBeforeAck(b.jid, { deliver: b.deliver !== false }),
    'POST /fault/duplicate': (b) => server.duplicateNext(b.jid, { mode: b.mode ?? 'twice' }),
    'POST /fault/corrupt': (b) => server.corruptNext(b.jid),
    'POST /fault/hold-receipts': (b) => server.holdReceipts(b.jid),
    'POST /fault/release-receipts': (b) => ({ count: server.releaseReceipts(b.jid) }),
    'POST /fault/lid-migrated': (b) => server.setLidMigrated(String(b.number), b.on === undefined ? true : !!b.on),
    'POST /fault/clear': () => ({ count: server.clearFaults() }),
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
