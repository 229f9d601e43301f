/**
 * The one place that loads Baileys at runtime (lazily: it costs ~200 ms, and read-only commands never
 * need it), builds its logger, and makes sockets with wa's settings.
 */
import type { WASocket } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';
import type { LogLevel, Timing } from '../config.js';
import type { SessionAuth } from './session-auth.js';
import { installIdentityChecks } from './verify-identity.js';

export type Baileys = typeof import('@whiskeysockets/baileys');

let loaded: Baileys | undefined;
let guarded = false;

/**
 * Baileys fires many internal promises without awaiting them (`void sendUnifiedSession()`, keep-alive
 * pings, init queries); when the socket dies under them (EPIPE, "Connection Closed") they reject with
 * no handler, and Node's default is to kill the process. A session manager must survive its sockets
 * dying, so such rejections are logged at warn and the connection's own close handling takes over.
 */
export function guardUnhandledRejections(logger: Logger): void {
  if (guarded) return;
  guarded = true;
  process.on('unhandledRejection', (reason) => {
    logger.warn({ err: reason }, 'ignored an unhandled rejection from a closing connection');
  });
}

/** Loads Baileys once, with wa's identity checks installed and self-tested (throws if they do not work). */
export async function loadBaileys(): Promise<Baileys> {
  if (!loaded) {
    const baileys = await import('@whiskeysockets/baileys');
    installIdentityChecks(baileys);
    loaded = baileys;
  }
  return loaded;
}

/**
 * Messages Baileys logs at error level for things that are part of normal operation: the 515 restart after
 * pairing ("stream errored out") and keep-alive pings cut off by a disconnect. They are logged at debug
 * instead, so a user's terminal only shows real problems.
 */
const EXPECTED_NOISE = new Set([
  'stream errored out',
  'error in sending keep alive',
  "unexpected error in 'init queries'",
]);

/**
 * A pino logger for Baileys and wa, writing JSON lines to stderr (commands) or a stream (serve: stdout). Credentials never reach it: wa logs none, and Baileys' fields that can carry secrets are redacted.
 */
export async function createLogger(level: LogLevel, destination: 2 | NodeJS.WritableStream): Promise<Logger> {
  const { default: pino } = await import('pino');
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['qr', 'creds', 'keys', 'token', '*.qr', '*.creds', '*.keys', '*.privKey', '*.private', 'authState'],
        censor: '[redacted]',
      },
      hooks: {
        logMethod(args, method, levelValue) {
          const msg = args.find((a): a is string => typeof a === 'string');
          if (levelValue >= 50 && msg !== undefined && EXPECTED_NOISE.has(msg)) {
            if (this.isLevelEnabled('debug')) this.debug(...(args as [object, string]));
            return;
          }
          method.apply(this, args);
        },
      },
    },
    // fd 2 is written synchronously, so the last lines before an exit are never lost.
    destination === 2 ? pino.destination({ fd: 2, sync: true }) : destination,
  );
}

export interface SocketSettings {
  wsUrl: string | undefined;
  timing: Pick<Timing, 'keepAliveMs' | 'connectTimeoutMs'>;
}

/**
 * A Baileys socket for a session, with the settings a session manager wants (no full history sync, no
 * presence, our logger), its credentials saved whole on every `creds.update`.
 */
export function makeSocket(baileys: Baileys, auth: SessionAuth, logger: Logger, settings: SocketSettings): WASocket {
  const socket = baileys.makeWASocket({
    auth: auth.state,
    logger,
    ...(settings.wsUrl ? { waWebSocketUrl: settings.wsUrl } : {}),
    keepAliveIntervalMs: settings.timing.keepAliveMs,
    connectTimeoutMs: settings.timing.connectTimeoutMs,
    // A session manager keeps the link alive: no full history download (Baileys still takes the recent
    // history it needs for LID mappings) and it does not show the account online.
    syncFullHistory: false,
    markOnlineOnConnect: false,
    // Never fetched by Baileys itself; set explicitly so no code path looks it up online.
    version: baileys.DEFAULT_CONNECTION_CONFIG.version,
  });
  socket.ev.on('creds.update', () => {
    auth.saveCreds().catch((error: unknown) => logger.error({ err: error }, 'saving credentials failed'));
  });
  return socket;
}

/**
 * Closes a socket without logging out. Baileys' end() waits for the WebSocket close handshake, up to 30 s
 * when the peer does not answer (shared/reference/baileys-v7.md §6), so it is raced against a grace period.
 */
export async function endSocket(socket: WASocket, graceMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    socket.end(undefined).catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    }),
  ]);
  clearTimeout(timer);
}
