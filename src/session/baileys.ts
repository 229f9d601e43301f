/**
 * The one place that loads Baileys at runtime (lazily: it costs ~200 ms, and read-only commands never
 * need it), builds its logger, and makes sockets with wa's settings.
 */
import type { WASocket } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';
import type { LogLevel, Timing } from '../config.js';
import type { SessionSocket, SocketFactory } from './connection.js';
import { MessageCapture, type CaptureHooks } from './capture.js';
import { OutboxSender, outboxMessageSource } from './outbox.js';
import type { SessionAuth } from './session-auth.js';
import { installIdentityChecks, withIdentityProbe, type IdentityProbe } from './verify-identity.js';

export type Baileys = typeof import('@whiskeysockets/baileys');
export type { Logger } from 'pino';

let loaded: Baileys | undefined;

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
 * Messages Baileys logs at error or warn level for things that are part of normal operation: the 515
 * restart after pairing ("stream errored out"), keep-alive pings cut off by a disconnect, a presence update
 * skipped. They are logged at debug instead, so a user's terminal only shows real problems.
 */
const EXPECTED_NOISE = new Set([
  'stream errored out',
  'error in sending keep alive',
  "unexpected error in 'init queries'",
  // Warn level: with markOnlineOnConnect false Baileys announces 'unavailable' at login, and skips it
  // when the account has no push name yet (lib/Socket/chats.js sendPresenceUpdate). Nothing to act on.
  'no name present, ignoring presence update request...',
]);

/**
 * The level of the logger handed to Baileys: it logs every connect at info, which with many sessions drowns
 * wa's own lines, so it gets warn unless asked for more (README "The daemon": "Baileys' own lines are kept
 * at `warn` unless you ask for `debug`"), or for less.
 */
export const baileysLevel = (level: string): LogLevel =>
  level === 'debug' || level === 'trace' || level === 'silent' || level === 'error' || level === 'fatal'
    ? level
    : 'warn';

/**
 * A pino logger for Baileys and wa, writing JSON lines to the given stream (the command's stderr, or
 * serve's stdout). Credentials never reach it: wa logs none, and Baileys' fields that can carry secrets
 * are redacted.
 */
export async function createLogger(level: LogLevel, destination: NodeJS.WritableStream): Promise<Logger> {
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
        // JSON escapes C0 controls but not DEL and C1 (U+009B is CSI to many terminals); they can only
        // stand inside strings here, where \u escapes mean the same.
        streamWrite: (line) =>
          line.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
        logMethod(args, method, levelValue) {
          const msg = args.find((a): a is string => typeof a === 'string');
          if (levelValue >= 40 && msg !== undefined && EXPECTED_NOISE.has(msg)) {
            if (this.isLevelEnabled('debug')) this.debug(...(args as [object, string]));
            return;
          }
          method.apply(this, args);
        },
      },
    },
    destination,
  );
}

export interface SocketSettings {
  wsUrl: string | undefined;
  timing: Pick<Timing, 'keepAliveMs' | 'connectTimeoutMs'> & Partial<Pick<Timing, 'qrTimeoutMs'>>;
  /** Drain the session's outbox while the socket is open (the lease owner's sockets: serve, `wa send`). */
  sendOutbox?: boolean | undefined;
}

/**
 * The real socket factory: Baileys sockets with the settings a session manager wants (no full history
 * sync, no presence, our logger), credentials saved whole on every `creds.update`, identity checks that
 * report to this connection alone, and every received message stored in the session's store
 * (src/session/capture.ts), whichever command opened the socket.
 */
export function baileysSocketFactory(
  baileys: Baileys,
  settings: SocketSettings,
  hooks: CaptureHooks = {},
): BaileysSocketFactory {
  // Captures whose socket has not finished: a socket WhatsApp closed (the daemon reconnects without
  // ending it) may still be storing what it flushed on the way down.
  const live = new Set<MessageCapture>();
  const factory = (auth: SessionAuth, logger: Logger): SessionSocket => {
    const { socket, capture } = wrapSocket(baileys, auth, logger, settings, hooks);
    live.add(capture);
    void capture.finished.then(() => live.delete(capture));
    return socket;
  };
  return Object.assign(factory, {
    settle: async (maxMs: number): Promise<void> => {
      await Promise.all([...live].map((capture) => capture.settle(maxMs)));
    },
  });
}

/** The real factory, which can also wait for the message writes of every socket it made (before the store closes). */
export type BaileysSocketFactory = SocketFactory & { settle(maxMs: number): Promise<void> };

/** How long closing a socket waits for message writes still in flight (each retries for longer on its own). */
const CAPTURE_SETTLE_MS = 15_000;

function wrapSocket(
  baileys: Baileys,
  auth: SessionAuth,
  logger: Logger,
  settings: SocketSettings,
  hooks: CaptureHooks,
): { socket: SessionSocket; capture: MessageCapture } {
  const probe: IdentityProbe = { failure: undefined };
  // Made inside the probe's scope: the WebSocket and every callback of it inherit it (AsyncLocalStorage).
  const socket = withIdentityProbe(probe, () =>
    baileys.makeWASocket({
      auth: auth.state,
      logger,
      ...(settings.wsUrl ? { waWebSocketUrl: settings.wsUrl } : {}),
      keepAliveIntervalMs: settings.timing.keepAliveMs,
      connectTimeoutMs: settings.timing.connectTimeoutMs,
      ...(settings.timing.qrTimeoutMs ? { qrTimeout: settings.timing.qrTimeoutMs } : {}),
      // A session manager keeps the link alive: no full history download (Baileys still takes the recent
      // history it needs for LID mappings) and it does not show the account online.
      syncFullHistory: false,
      markOnlineOnConnect: false,
      // Never fetched by Baileys itself; set explicitly so no code path looks it up online.
      version: baileys.DEFAULT_CONNECTION_CONFIG.version,
      // Retry receipts from companions always miss Baileys' own cache (keyed by chat, looked up by device
      // jid: Socket/messages-recv.js sendMessagesAgain), so the outbox answers them.
      getMessage: outboxMessageSource(auth.store, auth.sessionId, logger),
      // wa's sent messages live in the outbox and report through `status` events; Baileys' own `append`
      // upsert of each (Socket/messages-send.js) would be stored as a received message too.
      emitOwnEvents: false,
    }),
  );
  socket.ev.on('creds.update', () => {
    auth.saveCreds().catch((error: unknown) => logger.error({ err: error }, 'saving credentials failed'));
  });
  // Attached before any frame can arrive (makeWASocket connects asynchronously), so nothing slips past it.
  const capture = new MessageCapture(socket, auth.store, auth.sessionId, logger, baileys, hooks);
  const sender = settings.sendOutbox
    ? new OutboxSender(socket, auth.store, auth.sessionId, logger, baileys, auth.fence)
    : undefined;
  const wrapped: SessionSocket = {
    onUpdate: (listener) => void socket.ev.on('connection.update', listener),
    onFrame: (listener) => void socket.ws.on('message', listener),
    end: async () => {
      // Baileys' end() destroys the event buffer with the upserts it still holds (Utils/event-buffer.js).
      capture.flush();
      sender?.stop();
      await endSocket(socket);
      // A message waiting for its ack is recorded `unknown` before the store can close.
      await sender?.finished();
      await capture.settle(CAPTURE_SETTLE_MS);
      capture.close();
    },
    untilBacklogStored: (maxMs) => capture.untilBacklogStored(maxMs),
    terminate: () => {
      // Baileys' WebSocketClient keeps the `ws` socket as `.socket` (lib/Socket/Client/websocket.js).
      try {
        (socket.ws as unknown as { socket?: { terminate(): void } | null }).socket?.terminate();
      } catch {
        // already closed
      }
      void socket.end(undefined).catch(() => undefined);
    },
    identityFailure: () => probe.failure,
    baileys: socket,
  };
  return { socket: wrapped, capture };
}

/**
 * Closes a socket without logging out. Baileys' end() waits for the WebSocket close handshake, up to 30 s
 * when the peer does not answer (lib/Socket/Client/websocket.js closes without a deadline), so it is raced
 * against a grace period.
 */
async function endSocket(socket: WASocket, graceMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    socket.end(undefined).catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    }),
  ]);
  clearTimeout(timer);
}
