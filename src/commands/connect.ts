import type { WASocket } from '@whiskeysockets/baileys';
import { loadCreds } from '../auth/auth-state.js';
import type { Context } from '../cli/context.js';
import { createConnectView, type ConnectView } from '../cli/connect-view.js';
import { ExitCode, usageError, WaError } from '../errors.js';
import { assertSessionId } from '../session-id.js';
import { createLogger, endSocket, guardUnhandledRejections, loadBaileys, makeSocket } from '../session/baileys.js';
import { classifyDisconnect, type Disconnect } from '../session/disconnect.js';
import { newOwner, SessionLease } from '../session/lease.js';
import { SessionAuth } from '../session/session-auth.js';
import { takeIdentityFailure } from '../session/verify-identity.js';
import { unlockValues } from '../store/sealed.js';
import type { SessionStore } from '../store/types.js';
import { requireSession } from './common.js';

export interface ConnectOptions {
  phone?: string | undefined;
  timeout?: string | undefined;
  takeover?: boolean | undefined;
}

type StopReason = 'interrupted' | 'timeout' | 'lease';
type Outcome =
  | { kind: 'open' }
  | { kind: 'closed'; disconnect: Disconnect }
  | { kind: 'stopped' }
  | { kind: 'failed'; error: unknown };

export function parseSeconds(value: string, flag: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
    throw usageError(
      'E_USAGE',
      `${flag} must be a number of seconds between 0 and 86400, not ${JSON.stringify(value)}`,
    );
  }
  return seconds * 1000;
}

function parsePhone(value: string): string {
  const digits = value.replace(/[\s\-().]/g, '').replace(/^\+/, '');
  if (!/^\d{7,15}$/.test(digits)) {
    throw usageError(
      'E_PHONE',
      `--phone must be a phone number with country code, digits only (like 4915112345678), not ${JSON.stringify(value)}`,
    );
  }
  return digits;
}

/**
 * `wa connect <id>`: pairs an unpaired session (QR or pairing code), or checks that a paired one connects;
 * then flushes pending writes and closes without logging out. An abandoned pairing leaves nothing stored.
 */
export async function connect(ctx: Context, id: string, options: ConnectOptions): Promise<void> {
  assertSessionId(id);
  const timeoutMs = parseSeconds(options.timeout ?? '180', '--timeout');
  const phone = options.phone === undefined ? undefined : parsePhone(options.phone);
  const view = createConnectView(ctx.out);
  const store = await ctx.openStore('write');
  try {
    await unlockValues(store); // a missing or wrong WA_SECRET fails now, before any lease is taken
    const session = await requireSession(store, id);
    const stop = new AbortController();
    let stopReason: StopReason | undefined;
    const halt = (reason: StopReason): void => {
      stopReason ??= reason;
      stop.abort();
    };
    const { leaseTtlMs: ttlMs, leaseRenewMs: renewMs } = ctx.config.timing;
    const lease = new SessionLease(store, id, newOwner('connect', ctx.host, ctx.pid), { ttlMs, renewMs });
    await lease.acquire(options.takeover === true, () => halt('lease'));
    const onSignal = (): void => halt('interrupted');
    ctx.signal.addEventListener('abort', onSignal);
    if (ctx.signal.aborted) onSignal();
    const timer = setTimeout(() => halt('timeout'), timeoutMs);
    try {
      await run({
        ctx,
        store,
        id,
        phone,
        view,
        stop: stop.signal,
        stopReason: () => stopReason,
        timeoutMs,
        wasLoggedOut: session.state === 'logged_out',
      });
    } catch (error) {
      if (error instanceof WaError) view.error(error.code, error.message);
      throw error;
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onSignal);
      view.done();
      await lease.release();
    }
  } finally {
    await store.close();
  }
}

interface RunArgs {
  ctx: Context;
  store: SessionStore;
  id: string;
  phone: string | undefined;
  view: ConnectView;
  stop: AbortSignal;
  stopReason: () => StopReason | undefined;
  timeoutMs: number;
  wasLoggedOut: boolean;
}

async function run({ ctx, store, id, phone, view, stop, stopReason, timeoutMs, wasLoggedOut }: RunArgs): Promise<void> {
  const baileys = await loadBaileys();
  const logger = await createLogger(ctx.config.logLevel ?? 'warn', 2);
  guardUnhandledRejections(logger);
  const stored = await loadCreds(store, id);
  const wasPaired = Boolean(stored?.account) && !wasLoggedOut;
  // Dead credentials (logged out) or half-made ones (an abandoned pairing) are cleared: pair anew, cleanly.
  if (!wasPaired && stored) await store.clearAuth(id);
  const auth = await SessionAuth.open(store, id, { deferCredsUntilPaired: !wasPaired });
  view.connecting(wasPaired ? 'Connecting to WhatsApp…' : 'Connecting to WhatsApp to pair…');

  let qrCount = 0;
  let codeRequested = false;
  for (;;) {
    const socket = makeSocket(baileys, auth, logger, ctx.config);
    let onStop = (): void => undefined;
    const outcome = await new Promise<Outcome>((resolve) => {
      onStop = () => resolve({ kind: 'stopped' });
      stop.addEventListener('abort', onStop, { once: true });
      if (stop.aborted) onStop();
      socket.ev.on('connection.update', (update) => {
        if (update.qr) {
          if (phone) {
            // The code request needs an open socket: the first QR is the earliest sure sign of one.
            if (!codeRequested) {
              codeRequested = true;
              socket.requestPairingCode(phone).then(
                (code) => view.code(`${code.slice(0, 4)}-${code.slice(4)}`, phone),
                (error: unknown) => resolve({ kind: 'failed', error }),
              );
            }
          } else {
            qrCount++;
            // Baileys shows the first QR for 60 s and each later one for 20 s (lib/Socket/socket.js).
            void view.qr(update.qr, new Date(Date.now() + (qrCount === 1 ? 60_000 : 20_000)));
          }
        }
        if (update.isNewLogin) {
          const me = auth.state.creds.me;
          view.paired(me?.id ?? '', me?.name ?? null);
          view.connecting('Logging in…');
        }
        if (update.connection === 'open') resolve({ kind: 'open' });
        if (update.connection === 'close')
          resolve({ kind: 'closed', disconnect: classifyDisconnect(update.lastDisconnect?.error) });
      });
    });
    stop.removeEventListener('abort', onStop);

    if (outcome.kind === 'closed' && outcome.disconnect.action === 'restart') continue; // 515: log in with the saved creds
    if (outcome.kind === 'open') return finishOpen(store, id, auth, socket, view);
    await endSocket(socket);
    await auth.close();
    throw await failure(store, id, auth, wasPaired, outcome, stopReason(), timeoutMs, qrCount > 0 || codeRequested);
  }
}

async function finishOpen(
  store: SessionStore,
  id: string,
  auth: SessionAuth,
  socket: WASocket,
  view: ConnectView,
): Promise<void> {
  const me = auth.state.creds.me;
  await store.updateSession(id, { state: 'paired', connection: 'open', lastConnectedAt: new Date().toISOString() });
  view.open(me?.id ?? '', me?.name ?? null);
  // Let the writes that follow a login (app state, LID mappings, pre-key counters) land before closing.
  await auth.settle(500, 5000);
  await endSocket(socket);
  await auth.close();
  await store.updateSession(id, { connection: 'closed' });
}

async function failure(
  store: SessionStore,
  id: string,
  auth: SessionAuth,
  wasPaired: boolean,
  outcome: Exclude<Outcome, { kind: 'open' }>,
  stopReason: StopReason | undefined,
  timeoutMs: number,
  pairingShown: boolean,
): Promise<WaError> {
  // Nothing half-stored: a pairing that did not complete leaves the session exactly unpaired.
  if (!auth.paired) await store.clearAuth(id);
  const disconnect = outcome.kind === 'closed' ? outcome.disconnect : undefined;
  await store.updateSession(id, {
    connection: 'closed',
    ...(disconnect && disconnect.code !== null
      ? { lastDisconnect: { code: disconnect.code, reason: disconnect.reason, at: new Date().toISOString() } }
      : {}),
  });

  if (outcome.kind === 'stopped') {
    if (stopReason === 'interrupted')
      return new WaError(
        ExitCode.interrupted,
        'E_INTERRUPTED',
        auth.paired ? 'interrupted' : 'interrupted; nothing was stored',
      );
    if (stopReason === 'lease') {
      return new WaError(
        ExitCode.busy,
        'E_LEASE_LOST',
        `session '${id}' was taken over by another process; closed without logging out`,
      );
    }
    return new WaError(
      ExitCode.unavailable,
      'E_TIMEOUT',
      pairingShown && !auth.paired
        ? `no phone linked within ${timeoutMs / 1000}s; nothing was stored`
        : `could not connect to WhatsApp within ${timeoutMs / 1000}s`,
      { hint: `wa connect ${id} --timeout ${Math.round((timeoutMs / 1000) * 2)}` },
    );
  }
  if (outcome.kind === 'failed') {
    const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    return new WaError(ExitCode.unavailable, 'E_PAIRING_CODE', `could not request a pairing code: ${message}`, {
      cause: outcome.error,
    });
  }

  const { reason } = outcome.disconnect;
  switch (outcome.disconnect.action) {
    case 'logged_out':
      if (!wasPaired)
        return new WaError(ExitCode.unavailable, 'E_PAIRING_FAILED', `pairing failed: ${reason}`, {
          hint: `wa connect ${id}`,
        });
      await store.updateSession(id, { state: 'logged_out' });
      return new WaError(ExitCode.notPaired, 'E_LOGGED_OUT', `session '${id}' is ${reason}`, {
        hint: `wa connect ${id} (pairs it again)`,
      });
    case 'replaced':
      await store.updateSession(id, { state: 'replaced' });
      return new WaError(
        ExitCode.unavailable,
        'E_REPLACED',
        `session '${id}' was ${reason}; wa stopped instead of fighting over it`,
        {
          hint: `stop the other client, then wa connect ${id}`,
        },
      );
    case 'qr_expired':
      return new WaError(
        ExitCode.unavailable,
        'E_QR_EXPIRED',
        'no QR code was scanned before they ran out; nothing was stored',
        {
          hint: `wa connect ${id} (or pair with a code: wa connect ${id} --phone <number>)`,
        },
      );
    case 'stop': {
      const detail = takeIdentityFailure();
      return new WaError(ExitCode.unavailable, 'E_STOPPED', detail ? `${reason}: ${detail}` : reason, {
        hint: reason.includes('identity')
          ? 'check --ws-url / WA_WS_URL: this is not a genuine WhatsApp server'
          : undefined,
      });
    }
    default:
      return new WaError(ExitCode.unavailable, 'E_UNAVAILABLE', `cannot reach WhatsApp: ${reason}`, {
        hint: `wa connect ${id}`,
      });
  }
}
