import { loadCreds } from '../auth/auth-state.js';
import { ExitCode, WaError } from '../errors.js';
import { baileysSocketFactory, createLogger, loadBaileys } from '../session/baileys.js';
import { closedPatch, untilOpenOrClosed, type ConnectionOutcome, type SessionSocket } from '../session/connection.js';
import { newOwner, SessionLease } from '../session/lease.js';
import { SessionAuth } from '../session/session-auth.js';
import { unlockValues } from '../store/sealed.js';
import type { SessionStore } from '../store/types.js';
import { createConnectView, type ConnectView } from '../terminal/connect-view.js';
import { requireSession } from './common.js';
import type { Context } from './context.js';

export interface ConnectOptions {
  /** Pair with a code for this number (digits, validated at the edge) instead of a QR code. */
  phone?: string | undefined;
  timeoutMs: number;
  takeover?: boolean | undefined;
}

type StopReason = 'interrupted' | 'timeout' | 'lease';

/**
 * `wa connect <id>`: pairs an unpaired session (QR or pairing code), or checks that a paired one connects;
 * then flushes pending writes and closes without logging out. An abandoned pairing leaves nothing stored.
 */
export async function connect(ctx: Context, id: string, options: ConnectOptions): Promise<void> {
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
    const timer = setTimeout(() => halt('timeout'), options.timeoutMs);
    try {
      await run({
        ctx,
        store,
        id,
        phone: options.phone,
        view,
        stop: stop.signal,
        stopReason: () => stopReason,
        fence: lease.owner.ownerId,
        onLeaseLost: () => halt('lease'),
        timeoutMs: options.timeoutMs,
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
  /** Our lease owner id: auth writes are fenced by it. */
  fence: string;
  /** A fenced write was refused: the lease is someone else's now. */
  onLeaseLost: () => void;
  timeoutMs: number;
  wasLoggedOut: boolean;
}

async function run({
  ctx,
  store,
  id,
  phone,
  view,
  stop,
  stopReason,
  fence,
  onLeaseLost,
  timeoutMs,
  wasLoggedOut,
}: RunArgs): Promise<void> {
  const baileys = await loadBaileys();
  const logger = await createLogger(ctx.config.logLevel ?? 'warn', view.logStream);
  ctx.processLog.logTo(logger);
  const openSocket = baileysSocketFactory(baileys, ctx.config);
  const stored = await loadCreds(store, id);
  const wasPaired = Boolean(stored?.account) && !wasLoggedOut;
  // Dead credentials (logged out) or half-made ones (an abandoned pairing) are cleared: pair anew, cleanly.
  if (!wasPaired && stored) await store.clearAuth(id);
  const auth = await SessionAuth.open(store, id, { deferCredsUntilPaired: !wasPaired, fence });
  auth.onLeaseLost(onLeaseLost);
  view.connecting(wasPaired ? 'Connecting to WhatsApp…' : 'Connecting to WhatsApp to pair…');

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
                (code) => view.code(`${code.slice(0, 4)}-${code.slice(4)}`, phone),
                (error: unknown) => fail(error),
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
      },
    });

    if (outcome.kind === 'closed' && outcome.disconnect.action === 'restart') continue; // 515: log in with the saved creds
    if (outcome.kind === 'open') return finishOpen(store, id, auth, socket, view);
    await socket.end();
    await auth.close();
    throw await failure(store, id, auth, wasPaired, outcome, stopReason(), timeoutMs, qrCount > 0 || codeRequested);
  }
}

/** How long `wa connect` waits for WhatsApp's offline notification after the connection opened. */
const BACKLOG_WAIT_MS = 15_000;

async function finishOpen(
  store: SessionStore,
  id: string,
  auth: SessionAuth,
  socket: SessionSocket,
  view: ConnectView,
): Promise<void> {
  const me = auth.state.creds.me;
  await auth.ensureCredsStored().catch(async (error: unknown) => {
    await socket.end();
    await auth.close();
    throw error;
  });
  await store.updateSession(id, { state: 'paired', connection: 'open', lastConnectedAt: new Date().toISOString() });
  view.open(me?.id ?? '', me?.name ?? null);
  // SPEC: a paired session stays connected until the offline backlog is stored (its receipts have gone
  // out already, so closing earlier would lose those messages); bounded, for a server that never says so.
  await socket.untilBacklogStored?.(BACKLOG_WAIT_MS);
  // Let the writes that follow a login (app state, LID mappings, pre-key counters) land before closing.
  await auth.settle(500, 5000);
  try {
    // README "Pairing": exit 0 only with the credentials stored. A creds write that failed (Baileys fires
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
