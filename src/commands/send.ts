import { sleep } from '../clock.js';
import { ExitCode, usageError, WaError } from '../errors.js';
import { parseRecipient, type Recipient } from '../recipient.js';
import type { Baileys } from '../session/baileys.js';
import { closedPatch, untilClosed, untilOpenOrClosed, type SessionSocket } from '../session/connection.js';
import { newOwner, SessionLease } from '../session/lease.js';
import { newMessageId } from '../session/message-id.js';
import { NOT_ON_WHATSAPP } from '../session/outbox.js';
import { SessionAuth } from '../session/session-auth.js';
import { unlockValues } from '../store/sealed.js';
import { reached, waitForMessage, type WaitState } from '../session/message-wait.js';
import type { OutgoingMessage, SessionStore } from '../store/types.js';
import { requireSession } from '../session/registry.js';
import type { Context } from './context.js';

export type { WaitState };

export interface SendOptions {
  key?: string | undefined;
  wait: WaitState;
  timeoutMs: number;
}

/**
 * How often `wa send` reads its message's row while it waits: a read by primary key, cheap enough for a
 * command that lives a second, and it shortens every send by half an interval on average.
 */
const SEND_POLL_MS = 25;
const sendPoll = (signal: AbortSignal): Promise<void> => sleep(SEND_POLL_MS, signal);
/**
 * How long a direct send stays connected once its message reached the wait state: a recipient's retry
 * receipt (a new Signal session after a reinstall, say) is answered from the outbox only while connected.
 */
const RETRY_LINGER_MS = 2000;

type Stop = 'timeout' | 'interrupted' | 'lease' | 'closed';

/**
 * `wa send <id> <to> [text]` (README "Sending messages"). The message goes through the outbox: with a live owner
 * (`wa serve` here or on another host) it is queued for that owner and this process only watches its row;
 * with none, this process takes the lease, connects, checks the recipient, queues and sends it itself
 * (src/session/outbox.ts), waits, and closes. Either way the message is printed whatever the outcome.
 *
 * Recipients are checked in two steps: the form here, before anything (exit 2); whether a number is on
 * WhatsApp needs a socket. Sending directly, that check runs before the message is queued, so nothing is
 * queued and nothing reaches WhatsApp. Delegated, the owner checks before it writes anything and rejects
 * the message with code `not-on-whatsapp`, which is exit 2 here: the row then exists, `rejected`, but no
 * `message` stanza was ever sent (the simplest design that needs no socket in this process).
 */
export async function send(
  ctx: Context,
  id: string,
  to: string,
  text: string | undefined,
  options: SendOptions,
): Promise<ExitCode> {
  const recipient = parseRecipient(to);
  const body = text === undefined || text === '-' ? await readText(ctx) : text;
  if (body.length === 0) throw usageError('E_TEXT', 'the message is empty', { hint: `wa send ${id} ${to} "text"` });
  const store = await ctx.openStore('write');
  try {
    await unlockValues(store); // a missing or wrong WA_SECRET fails now, before any lease is taken
    const session = await requireSession(store, id);
    if (session.state !== 'paired') {
      throw new WaError(ExitCode.notPaired, 'E_NOT_PAIRED', `session '${id}' is ${session.state}`, {
        hint: `wa connect ${id}`,
      });
    }
    const stop = new AbortController();
    let reason: Stop | undefined;
    const halt = (why: Stop): void => {
      reason ??= why;
      stop.abort();
    };
    const onSignal = (): void => halt('interrupted');
    ctx.signal.addEventListener('abort', onSignal);
    if (ctx.signal.aborted) onSignal();
    const timer = setTimeout(() => halt('timeout'), options.timeoutMs);
    try {
      // The lease first, Baileys only if this process sends: handing the message to a live owner needs
      // neither Baileys nor its self-test (src/session/message-id.ts makes the id).
      const { leaseTtlMs: ttlMs, leaseRenewMs: renewMs } = ctx.config.timing;
      const lease = new SessionLease(store, id, newOwner('send', ctx.host, ctx.pid), { ttlMs, renewMs });
      try {
        await lease.acquire(false, () => halt('lease'));
      } catch (error) {
        if (!(error instanceof WaError) || error.code !== 'E_BUSY') throw error;
        // A live owner sends it: queue the message for it and watch the row.
        const { message } = await store.enqueueMessage(id, {
          id: newMessageId(session.jid),
          to: recipient.jid,
          text: body,
          key: options.key,
        });
        return await finish(
          ctx,
          store,
          await waitForMessage(store, message, options.wait, stop.signal, sendPoll),
          options,
          () => reason,
        );
      }
      try {
        const baileys = await import('../session/baileys.js');
        const lib = await baileys.loadBaileys();
        const message = await direct(ctx, store, lib, baileys, id, recipient, body, options, lease, stop, halt);
        return await finish(ctx, store, message, options, () => reason);
      } finally {
        await lease.release();
      }
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onSignal);
    }
  } finally {
    await store.close();
  }
}

async function direct(
  ctx: Context,
  store: SessionStore,
  lib: Baileys,
  baileys: typeof import('../session/baileys.js'),
  id: string,
  recipient: Recipient,
  body: string,
  options: SendOptions,
  lease: SessionLease,
  stop: AbortController,
  halt: (why: Stop) => void,
): Promise<OutgoingMessage> {
  const logger = await baileys.createLogger(ctx.config.logLevel ?? 'warn', ctx.out.stderr);
  ctx.processLog.logTo(logger);
  const openSocket = baileys.baileysSocketFactory(lib, { ...ctx.config, sendOutbox: true });
  const auth = await SessionAuth.open(store, id, { deferCredsUntilPaired: false, fence: lease.owner.ownerId });
  auth.onLeaseLost(() => halt('lease'));
  let socket: SessionSocket | undefined;
  let enqueued: OutgoingMessage | undefined;
  try {
    for (;;) {
      socket = openSocket(auth, logger);
      const outcome = await untilOpenOrClosed(socket, { signal: stop.signal });
      if (outcome.kind === 'closed' && outcome.disconnect.action === 'restart') continue; // 515: log in again
      if (outcome.kind === 'open') break;
      await store.updateSession(id, closedPatch(outcome.kind === 'closed' ? outcome.disconnect : undefined, true));
      if (outcome.kind === 'closed' && outcome.disconnect.action === 'logged_out') {
        throw new WaError(ExitCode.notPaired, 'E_LOGGED_OUT', `session '${id}' is ${outcome.disconnect.reason}`, {
          hint: `wa connect ${id} (pairs it again)`,
        });
      }
      throw stopError(id, stop.signal.aborted ? 'stopped' : 'unreachable', outcome);
    }
    await store.updateSession(id, { connection: 'open', lastConnectedAt: new Date().toISOString() });
    const live = socket;
    void untilClosed(live, { signal: stop.signal }).then((outcome) => {
      if (outcome.kind === 'closed') halt('closed');
    });
    let jid = recipient.jid;
    if (recipient.kind === 'pn') {
      // Before anything is queued: a number that is not on WhatsApp leaves no row and sends no stanza.
      const { resolveRecipient } = await import('../session/outbox.js');
      const found = await resolveRecipient(live.baileys!, recipient.jid, lib);
      if ('notOnWhatsApp' in found) {
        throw new WaError(ExitCode.usage, 'E_NOT_ON_WHATSAPP', `${recipient.jid.split('@')[0]} is not on WhatsApp`);
      }
      jid = found.jid;
    }
    const { message } = await store.enqueueMessage(id, {
      id: newMessageId(auth.state.creds.me?.id),
      to: jid,
      text: body,
      key: options.key,
    });
    enqueued = message;
    // This socket's OutboxSender claims it (after any message queued before it) within OUTBOX_POLL_MS.
    const final = await waitForMessage(
      store,
      message,
      options.wait === 'queued' ? 'sent' : options.wait,
      stop.signal,
      sendPoll,
    );
    if (reached(final, 'sent') && !stop.signal.aborted) await sleep(RETRY_LINGER_MS, stop.signal);
    return final;
  } finally {
    // A message still queued is cancelled before the socket closes (its sender could claim it otherwise);
    // one in flight becomes `unknown` as the socket closes (src/session/outbox.ts).
    if (enqueued) await store.cancelMessage(id, enqueued.id);
    await auth.settle(300, 3000);
    await socket?.end();
    await auth.close();
    await store.updateSession(id, { connection: 'closed' });
  }
}

function stopError(id: string, why: 'stopped' | 'unreachable', outcome: unknown): WaError {
  const detail =
    typeof outcome === 'object' && outcome !== null && 'disconnect' in outcome
      ? (outcome as { disconnect: { reason: string } }).disconnect.reason
      : 'no connection';
  return new WaError(
    ExitCode.unavailable,
    why === 'stopped' ? 'E_TIMEOUT' : 'E_UNAVAILABLE',
    why === 'stopped'
      ? `could not connect session '${id}' to WhatsApp in time; nothing was queued`
      : `cannot reach WhatsApp: ${detail}; nothing was queued`,
    { hint: `wa connect ${id}` },
  );
}

/** Prints the message and turns its state into the exit code. */
async function finish(
  ctx: Context,
  store: SessionStore,
  message: OutgoingMessage,
  options: SendOptions,
  reason: () => Stop | undefined,
): Promise<ExitCode> {
  let current = message;
  // Given up while it is still queued: cancelled, so it is never sent after the caller heard it failed.
  if (!reached(current, options.wait) && current.status === 'queued') {
    current = (await store.cancelMessage(current.session, current.id)) ?? current;
  }
  current = (await store.getOutgoing(current.session, current.id)) ?? current;
  const printed = {
    id: current.id,
    session: current.session,
    to: current.to,
    status: current.status,
    code: current.code,
  };
  if (ctx.out.json) ctx.out.data(printed);
  else
    ctx.out.result(
      `${current.id}  ${current.session} → ${current.to}  ${current.status}${current.code ? ` (${current.code})` : ''}`,
    );
  if (current.status === 'rejected') {
    if (current.code === NOT_ON_WHATSAPP) {
      throw new WaError(ExitCode.usage, 'E_NOT_ON_WHATSAPP', `${current.to.split('@')[0]} is not on WhatsApp`);
    }
    throw new WaError(ExitCode.rejected, 'E_REJECTED', `WhatsApp rejected the message (error ${current.code ?? '?'})`);
  }
  if (reached(current, options.wait)) return ExitCode.ok;
  const why = reason();
  if (why === 'interrupted')
    throw new WaError(ExitCode.interrupted, 'E_INTERRUPTED', `interrupted; the message is ${current.status}`);
  if (why === 'lease')
    throw new WaError(
      ExitCode.busy,
      'E_LEASE_LOST',
      `session '${current.session}' was taken over by another process; the message is ${current.status}`,
    );
  throw new WaError(
    ExitCode.unavailable,
    current.status === 'unknown' ? 'E_UNKNOWN' : 'E_TIMEOUT',
    current.status === 'unknown'
      ? 'the connection closed before WhatsApp acknowledged the message: its outcome is unknown (the owner sends it again with the same id)'
      : `the message did not reach ${options.wait} in time; it is ${current.status}`,
  );
}

async function readText(ctx: Context): Promise<string> {
  if (!ctx.readStdin) throw usageError('E_TEXT', 'no text given and no stdin to read it from');
  const text = await ctx.readStdin();
  return text.replace(/\r?\n$/, '');
}
