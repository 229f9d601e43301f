import { WaError } from '../errors.js';
import { baileysSocketFactory, createLogger, loadBaileys } from '../session/baileys.js';
import { newOwner, SessionLease } from '../session/lease.js';
import { connectSession, type StopReason } from '../session/pairing-flow.js';
import { unlockValues } from '../store/sealed.js';
import type { SessionStore } from '../store/types.js';
import { createConnectView, type ConnectView } from '../terminal/connect-view.js';
import { requireSession } from '../session/registry.js';
import type { Context } from './context.js';

export interface ConnectOptions {
  /** Pair with a code for this number (digits, validated at the edge) instead of a QR code. */
  phone?: string | undefined;
  timeoutMs: number;
  takeover?: boolean | undefined;
}

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

async function run(args: {
  ctx: Context;
  store: SessionStore;
  id: string;
  phone: string | undefined;
  view: ConnectView;
  stop: AbortSignal;
  stopReason: () => StopReason | undefined;
  fence: string;
  onLeaseLost: () => void;
  timeoutMs: number;
  wasLoggedOut: boolean;
}): Promise<void> {
  const { ctx, view } = args;
  const baileys = await loadBaileys();
  const logger = await createLogger(ctx.config.logLevel ?? 'warn', view.logStream);
  ctx.processLog.logTo(logger);
  await connectSession({
    ...args,
    openSocket: baileysSocketFactory(baileys, ctx.config),
    qrTimeoutMs: ctx.config.timing.qrTimeoutMs,
    logger,
    listener: { ...view, qr: (qr, expiresAt) => void view.qr(qr, expiresAt) },
  });
}
