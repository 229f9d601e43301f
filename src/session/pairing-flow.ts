/**
 * Pairing and connecting one session, as `wa connect` and the daemon's HTTP pairing both do it: clear dead
 * or half-made credentials, open sockets until one opens (the 515 restart after pair-success is a new
 * socket with the saved creds), show each QR or the pairing code, store the creds only once the phone
 * accepted, and close cleanly. An abandoned pairing stores nothing (README "Pairing").
 */
import type { Logger } from 'pino';
import { loadCreds } from '../auth/auth-state.js';
import { ExitCode, WaError } from '../errors.js';
import type { SessionStore } from '../store/types.js';
import {
  closedPatch,
  untilOpenOrClosed,
  type ConnectionOutcome,
  type SessionSocket,
  type SocketFactory,
} from './connection.js';
import { SessionAuth } from './session-auth.js';

/** Why a caller stopped the attempt: each is its own error. */
export type StopReason = 'interrupted' | 'timeout' | 'lease' | 'cancelled';

/** What a pairing shows, in order: QR codes (or one code), paired, open. */
export interface PairingListener {
  connecting(text: string): void;
  qr(qr: string, expiresAt: Date): void;
  code(code: string, phone: string): void;
  paired(jid: string, name: string | null): void;
  open(jid: string, name: string | null): void;
}

/**
 * When a QR expires: Baileys shows the first for 60 s and each later one for 20 s, or each for `qrTimeout`
 * when that is set (lib/Socket/socket.js); `qrTimeoutMs` is wa's setting of it (0: Baileys' own).
 */
export const qrExpiry = (qrNumber: number, now = Date.now(), qrTimeoutMs = 0): Date =>
  new Date(now + (qrTimeoutMs || (qrNumber === 1 ? 60_000 : 20_000)));

/** `ABCDEFGH` → `ABCD-EFGH`, as people type it on the phone. */
export const formatPairingCode = (code: string): string => `${code.slice(0, 4)}-${code.slice(4)}`;

export interface ConnectSessionArgs {
  store: SessionStore;
  id: string;
  /** Pair with a code for this number (digits, validated already) instead of a QR code. */
  phone: string | undefined;
  openSocket: SocketFactory;
  logger: Logger;
  listener: PairingListener;
  stop: AbortSignal;
  stopReason: () => StopReason | undefined;
  /** Our lease owner id: auth writes are fenced by it. */
  fence: string;
  /** A fenced write was refused: the lease is someone else's now. */
  onLeaseLost: () => void;
  /** For the timeout's message. */
  timeoutMs: number;
  /** The QR lifetime the socket factory was given (Timing.qrTimeoutMs; 0: Baileys' own). */
  qrTimeoutMs?: number | undefined;
  wasLoggedOut: boolean;
}

/**
 * Pairs (if unpaired) or connects, waits for the connection to open, stores the creds, lets the writes
 * after a login land, and closes without logging out. Resolves once all that is done; throws a WaError
 * saying why otherwise (and then nothing of an unfinished pairing is stored).
 */
export async function connectSession(args: ConnectSessionArgs): Promise<void> {
  const { store, id, phone, openSocket, logger, listener, stop, fence, onLeaseLost, wasLoggedOut } = args;
  const stored = await loadCreds(store, id);
  const wasPaired = Boolean(stored?.account) && !wasLoggedOut;
  // Dead credentials (logged out) or half-made ones (an abandoned pairing) are cleared: pair anew, cleanly.
  if (!wasPaired && stored) await store.clearAuth(id);
  const auth = await SessionAuth.open(store, id, { deferCredsUntilPaired: !wasPaired, fence });
  auth.onLeaseLost(onLeaseLost);
  listener.connecting(wasPaired ? 'Connecting to WhatsApp…' : 'Connecting to WhatsApp to pair…');

  let qrCount = 0;
  let codeRequested = false;
  for (;;) {
    const socket = openSocket(auth, logger);
    const outcome = await untilOpenOrClosed(socket, {
      signal: stop,
      onUpdate: (update, fail) => {
        if (update.qr) {
          if (phone) {
            // The code request needs an open socket: the first QR is the earliest sure sign of one.
            if (!codeRequested && socket.baileys) {
              codeRequested = true;
              socket.baileys.requestPairingCode(phone).then(
                (code) => listener.code(formatPairingCode(code), phone),
                (error: unknown) => fail(error),
              );
            }
          } else {
            qrCount++;
            listener.qr(update.qr, qrExpiry(qrCount, Date.now(), args.qrTimeoutMs));
          }
        }
        if (update.isNewLogin) {
          const me = auth.state.creds.me;
          listener.paired(me?.id ?? '', me?.name ?? null);
          listener.connecting('Logging in…');
        }
      },
    });

    if (outcome.kind === 'closed' && outcome.disconnect.action === 'restart') continue; // 515: log in with the saved creds
    if (outcome.kind === 'open') return finishOpen(store, id, auth, socket, listener);
    await socket.end();
    await auth.close();
    throw await failure(
      store,
      id,
      auth,
      wasPaired,
      outcome,
      args.stopReason(),
      args.timeoutMs,
      qrCount > 0 || codeRequested,
    );
  }
}

/** How long a connection waits for WhatsApp's offline notification after it opened. */
const BACKLOG_WAIT_MS = 15_000;

async function finishOpen(
  store: SessionStore,
  id: string,
  auth: SessionAuth,
  socket: SessionSocket,
  listener: PairingListener,
): Promise<void> {
  const me = auth.state.creds.me;
  await auth.ensureCredsStored().catch(async (error: unknown) => {
    await socket.end();
    await auth.close();
    throw error;
  });
  await store.updateSession(id, { state: 'paired', connection: 'open', lastConnectedAt: new Date().toISOString() });
  listener.open(me?.id ?? '', me?.name ?? null);
  // README "Receiving messages": a paired session stays connected until the offline backlog is stored (its
  // receipts have gone out already, so closing earlier would lose those messages); bounded, for a server
  // that never says so.
  await socket.untilBacklogStored?.(BACKLOG_WAIT_MS);
  // Let the writes that follow a login (app state, LID mappings, pre-key counters) land before closing.
  await auth.settle(500, 5000);
  try {
    // README "Pairing": success only with the credentials stored. A creds write that failed (Baileys fires
    // creds.update and forgets it) is written again here; still failing, it is exit 5, not "Connected".
    await auth.ensureCredsStored();
  } finally {
    await socket.end();
    await auth.close();
  }
  await store.updateSession(id, { connection: 'closed' });
}

async function failure(
  store: SessionStore,
  id: string,
  auth: SessionAuth,
  wasPaired: boolean,
  outcome: Exclude<ConnectionOutcome, { kind: 'open' }>,
  stopReason: StopReason | undefined,
  timeoutMs: number,
  pairingShown: boolean,
): Promise<WaError> {
  // Nothing half-stored: a pairing that did not complete leaves the session exactly unpaired.
  if (!auth.paired) await store.clearAuth(id);
  await store.updateSession(id, closedPatch(outcome.kind === 'closed' ? outcome.disconnect : undefined, wasPaired));

  if (outcome.kind === 'stopped') {
    if (stopReason === 'interrupted')
      return new WaError(
        ExitCode.interrupted,
        'E_INTERRUPTED',
        auth.paired ? 'interrupted' : 'interrupted; nothing was stored',
      );
    if (stopReason === 'cancelled')
      return new WaError(
        ExitCode.unavailable,
        'E_CANCELLED',
        auth.paired ? 'pairing cancelled' : 'pairing cancelled; nothing was stored',
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

  const { reason, detail } = outcome.disconnect;
  switch (outcome.disconnect.action) {
    case 'logged_out':
      if (!wasPaired)
        return new WaError(ExitCode.unavailable, 'E_PAIRING_FAILED', `pairing failed: ${reason}`, {
          hint: `wa connect ${id}`,
        });
      return new WaError(ExitCode.notPaired, 'E_LOGGED_OUT', `session '${id}' is ${reason}`, {
        hint: `wa connect ${id} (pairs it again)`,
      });
    case 'replaced':
      return new WaError(
        ExitCode.unavailable,
        'E_REPLACED',
        `session '${id}' was ${reason}; wa stopped instead of fighting over it`,
        { hint: `stop the other client, then wa connect ${id}` },
      );
    case 'qr_expired':
      return new WaError(
        ExitCode.unavailable,
        'E_QR_EXPIRED',
        'no QR code was scanned before they ran out; nothing was stored',
        { hint: `wa connect ${id} (or pair with a code: wa connect ${id} --phone <number>)` },
      );
    case 'stop':
      return new WaError(ExitCode.unavailable, 'E_STOPPED', detail ? `${reason}: ${detail}` : reason, {
        hint: reason.includes('identity')
          ? 'check --ws-url / WA_WS_URL: this is not a genuine WhatsApp server'
          : undefined,
      });
    default:
      return new WaError(ExitCode.unavailable, 'E_UNAVAILABLE', `cannot reach WhatsApp: ${reason}`, {
        hint: `wa connect ${id}`,
      });
  }
}
