// @ts-check
/**
 * Pairs one device through the real Baileys client against the loopback test server: the QR that Baileys
 * shows is handed to `scan` (the simulated phone), the 515 restart is followed, and it returns once the
 * first login is open (or, with `skipFirstLogin`, as soon as pairing succeeded). Plain JS, shared by the
 * TypeScript tests (test/helpers/pair.ts) and the benchmarks (bench/serve.js); the caller brings the auth
 * state (any store) and trusts the test root in its Baileys instance.
 *
 * @param {{
 *   baileys: typeof import('@whiskeysockets/baileys'),
 *   auth: { state: import('@whiskeysockets/baileys').AuthenticationState, saveCreds: () => Promise<void> },
 *   url: string,
 *   logger: import('pino').Logger,
 *   scan: (qr: string) => Promise<unknown>,
 *   skipFirstLogin?: boolean,
 * }} options
 * @returns {Promise<string>} the paired device's jid
 */
export async function pairDevice({ baileys, auth, url, logger, scan, skipFirstLogin = false }) {
  for (let restarts = 0; restarts < 3; restarts++) {
    const sock = baileys.makeWASocket({
      auth: auth.state,
      logger,
      waWebSocketUrl: url,
      syncFullHistory: false,
      markOnlineOnConnect: false,
    });
    sock.ev.on('creds.update', () => void auth.saveCreds());
    /** @type {'open' | 'restart'} */
    const result = await new Promise((resolve, reject) => {
      sock.ev.on('connection.update', (update) => {
        if (update.qr) scan(update.qr).catch(reject);
        if (update.isNewLogin && skipFirstLogin) resolve('open');
        if (update.connection === 'open') resolve('open');
        if (update.connection === 'close') {
          const error = /** @type {{ output?: { statusCode?: number } } | undefined} */ (update.lastDisconnect?.error);
          const code = error?.output?.statusCode;
          if (code === 515) resolve('restart');
          else reject(new Error(`pairing closed with ${code}`));
        }
      });
    });
    if (result === 'open') {
      await auth.saveCreds();
      await Promise.race([sock.end(undefined), new Promise((r) => setTimeout(r, 1000))]);
      const jid = auth.state.creds.me?.id;
      if (!jid) throw new Error('paired, but Baileys recorded no jid');
      return jid;
    }
  }
  throw new Error('pairing kept restarting');
}
