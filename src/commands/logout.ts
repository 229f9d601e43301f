import { loadCreds } from '../auth/auth-state.js';
import { ExitCode, WaError } from '../errors.js';
import { baileysSocketFactory, createLogger, loadBaileys } from '../session/baileys.js';
import { untilClosed, untilOpenOrClosed } from '../session/connection.js';
import type { Disconnect } from '../session/disconnect.js';
import { newOwner, SessionLease } from '../session/lease.js';
import { SessionAuth } from '../session/session-auth.js';
import { unlockValues } from '../store/sealed.js';
import type { SessionStore } from '../store/types.js';
import { createConnectView } from '../terminal/connect-view.js';
import { requireSession } from '../session/registry.js';
import type { Context } from './context.js';

export interface LogoutOptions {
  force?: boolean | undefined;
  timeoutMs: number;
  takeover?: boolean | undefined;
}

/**
 * `wa logout <id>`: unlinks the device on WhatsApp (the phone's list drops it), then deletes the session's
 * credentials and keys; the session stays registered as `unpaired`. When WhatsApp cannot be reached, nothing
 * changes unless --force, which clears locally and warns that the phone may still list the device.
 */
export async function logout(ctx: Context, id: string, options: LogoutOptions): Promise<void> {
  const { timeoutMs } = options;
  const view = createConnectView(ctx.out);
  const store = await ctx.openStore('write');
  try {
    await unlockValues(store); // a missing or wrong WA_SECRET fails now, before any lease is taken
    await requireSession(store, id);
    const { leaseTtlMs: ttlMs, leaseRenewMs: renewMs } = ctx.config.timing;
    const lease = new SessionLease(store, id, newOwner('logout', ctx.host, ctx.pid), { ttlMs, renewMs });
    await lease.acquire(options.takeover === true, () => undefined);
    try {
      const creds = await loadCreds(store, id);
      if (!creds?.account) {
        await store.clearAuth(id);
        return report(ctx, id, 'not linked', `Session '${id}' was not linked to a phone; cleared its local data.`);
      }
      const unlinked = await unlink(ctx, store, id, timeoutMs, view);
      if (unlinked === true) {
        await store.clearAuth(id);
        return report(ctx, id, 'unlinked', `Logged out '${id}': the device was unlinked and its keys deleted.`);
      }
      if (unlinked.action === 'logged_out') {
        await store.clearAuth(id);
        return report(ctx, id, 'already unlinked', `WhatsApp had already unlinked '${id}'; deleted its keys.`);
      }
      if (unlinked.action === 'interrupted')
        throw new WaError(ExitCode.interrupted, 'E_INTERRUPTED', 'interrupted; nothing was changed');
      if (!options.force) {
        throw new WaError(
          ExitCode.unavailable,
          'E_UNAVAILABLE',
          `cannot reach WhatsApp to unlink '${id}': ${unlinked.reason}; nothing was changed`,
          {
            hint: `wa logout ${id} --force (clears it here; the phone may keep listing the device)`,
          },
        );
      }
      await store.clearAuth(id);
      ctx.out.warn(
        `could not reach WhatsApp (${unlinked.reason}): the phone may still list this device; remove it there.`,
      );
      return report(ctx, id, 'cleared locally', `Cleared '${id}' locally.`);
    } finally {
      view.done();
      await lease.release();
    }
  } finally {
    await store.close();
  }
}

function report(ctx: Context, id: string, result: string, text: string): void {
  if (ctx.out.json) ctx.out.data({ id, state: 'unpaired', result });
  else ctx.out.result(text);
}

/** Opens the session and sends remove-companion-device. True when sent; otherwise why it could not be. */
async function unlink(
  ctx: Context,
  store: SessionStore,
  id: string,
  timeoutMs: number,
  view: ReturnType<typeof createConnectView>,
): Promise<true | { action: Disconnect['action'] | 'interrupted'; reason: string }> {
  const baileys = await loadBaileys();
  const logger = await createLogger(ctx.config.logLevel ?? 'warn', view.logStream);
  ctx.processLog.logTo(logger);
  const auth = await SessionAuth.open(store, id, { deferCredsUntilPaired: false });
  view.connecting('Connecting to WhatsApp to unlink the device…');
  const socket = baileysSocketFactory(baileys, ctx.config)(auth, logger);
  const timeout = AbortSignal.timeout(timeoutMs);
  const outcome = await untilOpenOrClosed(socket, { signal: AbortSignal.any([ctx.signal, timeout]) });
  if (outcome.kind === 'open' && socket.baileys) {
    // logout() sends remove-companion-device without waiting for an answer, then ends the socket (401).
    const closed = untilClosed(socket, { signal: AbortSignal.timeout(2000) });
    await socket.baileys.logout();
    await closed;
    await socket.end(); // already closed by logout(): this waits for the messages received meanwhile to be stored
    await auth.close();
    return true;
  }
  await socket.end();
  await auth.close();
  if (outcome.kind === 'closed') return outcome.disconnect;
  return ctx.signal.aborted
    ? { action: 'interrupted', reason: 'interrupted' }
    : { action: 'retry', reason: `no connection within ${timeoutMs / 1000}s` };
}
