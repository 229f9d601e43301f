/**
 * Accepting messages to send (README "Sending messages"), for the HTTP API and the library's manager: the
 * message is checked, written to the outbox (from then on it is accepted), and the caller may wait for a
 * state. Whoever owns the session sends it — this process's socket when it owns it, otherwise a daemon
 * elsewhere on the same database — so this desk never sends anything itself.
 *
 * A number is checked against WhatsApp before anything is queued when this process holds the session's
 * open socket (a number not on WhatsApp leaves no row). When another process owns it, the owner checks
 * before it writes anything and rejects the message with code `not-on-whatsapp`: the same outcome (a
 * usage error, no stanza sent) as `wa send` delegated to a daemon.
 */
import type { WASocket } from '@whiskeysockets/baileys';
import { ExitCode, usageError, WaError } from '../errors.js';
import { parseRecipient } from '../recipient.js';
import type { EventWatch } from '../session/event-feed.js';
import { KnownNumbers, NOT_ON_WHATSAPP, resolveRecipient } from '../session/outbox.js';
import { FINAL_STATUSES, reached, waitForMessage, type WaitState } from '../session/message-wait.js';
import type { OutgoingMessage, SessionStore } from '../store/types.js';

/** WhatsApp's limit for one text message is 65 536 characters; a longer one is refused before it is queued. */
export const MAX_TEXT_LENGTH = 65_536;
/** How long a caller waits for `sent`/`delivered` unless it says otherwise (as `wa send --timeout`). */
export const DEFAULT_SEND_TIMEOUT_MS = 60_000;

export interface SendRequest {
  session: string;
  /** Any recipient form of src/recipient.ts. */
  to: string;
  text: string;
  /** Idempotency key: the same session and key return the message already accepted. */
  key?: string | null | undefined;
  /** Return once accepted (`queued`, the default) or once WhatsApp acked (`sent`) or the device received it (`delivered`). */
  wait?: WaitState | undefined;
  timeoutMs?: number | undefined;
  /** The caller gave up (Ctrl-C, an HTTP client gone): as a timeout, a message still `queued` is cancelled. */
  signal?: AbortSignal | undefined;
  /**
   * Stop waiting but leave the message as it is (the daemon is stopping: the next owner sends it): a
   * SendError E_STOPPING with the message as it stands.
   */
  detach?: AbortSignal | undefined;
}

export interface SendResult {
  message: OutgoingMessage;
  /** False when the key was used before: `message` is the one accepted then. */
  created: boolean;
}

/** A send that ended short of its wait state (rejected, timed out, cancelled): the message as it stands. */
export class SendError extends WaError {
  readonly outgoing: OutgoingMessage;
  constructor(exitCode: ExitCode, code: string, message: string, outgoing: OutgoingMessage) {
    super(exitCode, code, message);
    this.outgoing = outgoing;
  }
}

/**
 * A message as the HTTP API shows it (README "HTTP API"): what `wa send --json` prints (id, session, to,
 * status, code) plus the caller's key and the times. Never the text: it is sealed at rest, and the
 * caller has it.
 */
export function messageJson(message: OutgoingMessage): Record<string, unknown> {
  return {
    id: message.id,
    session: message.session,
    to: message.to,
    status: message.status,
    code: message.code,
    key: message.key,
    createdAt: message.createdAt,
    updatedAt: message.updatedAt,
  };
}

export interface MessageDeskDeps {
  store: SessionStore;
  /** The open Baileys socket of a session this process owns (Supervisor.socket), for the recipient check. */
  socket: (session: string) => WASocket | undefined;
  /** Baileys' generateMessageIDV2: the id is chosen before the row is written (src/session/outbox.ts). */
  newMessageId: (meJid: string | undefined) => string;
  tools: { jidNormalizedUser: (jid: string | undefined) => string };
  /**
   * Wait for a message's state through this shared watch (its status events) instead of reading its row
   * every MESSAGE_POLL_MS: the daemon's HTTP waits, so many waiting clients cost one query a tick.
   */
  watch?: EventWatch | undefined;
}

export class MessageDesk {
  private readonly deps: MessageDeskDeps;
  /**
   * Numbers found on WhatsApp lately, shared by every send through this desk (and its with() copies): a
   * burst of messages to one contact asks WhatsApp once, not once per message (see KnownNumbers).
   */
  private readonly known: KnownNumbers;

  constructor(deps: MessageDeskDeps, known = new KnownNumbers()) {
    this.deps = deps;
    this.known = known;
  }

  /** The same desk reading and writing through another store and waiting with a watch (HTTP's, src/daemon/http-messages.ts). */
  with(overrides: Pick<MessageDeskDeps, 'store' | 'watch'>): MessageDesk {
    return new MessageDesk({ ...this.deps, ...overrides }, this.known);
  }

  /**
   * Queues a message and waits as asked. Throws a usage error (exit 2) for a bad recipient, empty or
   * over-long text or an unknown session, E_NOT_PAIRED (3) for a session that is not paired, and a
   * SendError for a rejection (7, or 2 for a number not on WhatsApp) or a wait that timed out (4; a message
   * still `queued` then is cancelled, so it is never sent after its caller was told it failed).
   */
  async send(request: SendRequest): Promise<SendResult> {
    const { store } = this.deps;
    const recipient = parseRecipient(request.to);
    if (request.text.length === 0) throw usageError('E_TEXT', 'text: the message is empty');
    if (request.text.length > MAX_TEXT_LENGTH) {
      throw usageError('E_TEXT', `text: longer than WhatsApp's ${MAX_TEXT_LENGTH} characters`);
    }
    if (request.key !== undefined && request.key !== null && (request.key.length === 0 || request.key.length > 200)) {
      throw usageError('E_KEY', 'key: must be 1 to 200 characters');
    }
    const session = await store.getSession(request.session);
    if (!session) throw usageError('E_SESSION_UNKNOWN', `no session '${request.session}'`);
    if (session.state !== 'paired') {
      throw new WaError(ExitCode.notPaired, 'E_NOT_PAIRED', `session '${session.id}' is ${session.state}`, {
        hint: `pair it first: wa connect ${session.id}`,
      });
    }
    let to = recipient.jid;
    const socket = recipient.kind === 'pn' ? this.deps.socket(session.id) : undefined;
    if (socket) {
      // Asked of WhatsApp before anything is queued. A socket that cannot answer (it just closed) is no
      // reason to refuse: the owner checks again before it sends.
      const found = await resolveRecipient(socket, recipient.jid, this.deps.tools, this.known).catch(() => undefined);
      if (found && 'notOnWhatsApp' in found) {
        throw usageError('E_NOT_ON_WHATSAPP', `to: ${recipient.jid.split('@')[0]} is not on WhatsApp`);
      }
      if (found) to = found.jid;
    }
    const wait = request.wait ?? 'queued';
    // Watching starts before the row is written and read: a status change right after is not missed.
    let id: string | undefined;
    const watcher =
      wait === 'queued' ? undefined : this.deps.watch?.watch([session.id], (e) => e.type === 'status' && e.id === id);
    try {
      const { message, created } = await store.enqueueMessage(session.id, {
        id: this.deps.newMessageId(session.jid ?? undefined),
        to,
        text: request.text,
        key: request.key ?? null,
      });
      id = message.id; // the existing message's, for a key used before
      if (wait === 'queued' && !FINAL_STATUSES.has(message.status)) return { message, created };
      const timeout = AbortSignal.timeout(request.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS);
      const signal = AbortSignal.any([timeout, ...(request.signal ? [request.signal] : [])]);
      const stop = request.detach ? AbortSignal.any([signal, request.detach]) : signal;
      let current = await waitForMessage(store, message, wait, stop, watcher && ((s) => watcher.next(s)));
      if (
        !reached(current, wait) &&
        request.detach?.aborted &&
        !signal.aborted &&
        !FINAL_STATUSES.has(current.status)
      ) {
        throw new SendError(
          ExitCode.unavailable,
          'E_STOPPING',
          `this daemon is stopping; the message is ${current.status} and stays so: its session's next owner sends it`,
          current,
        );
      }
      if (!reached(current, wait) && current.status === 'queued') {
        current = (await store.cancelMessage(session.id, current.id)) ?? current;
      }
      if (reached(current, wait)) return { message: current, created };
      throw failure(current, wait);
    } finally {
      watcher?.close();
    }
  }

  /** A message of the session's outbox, or a usage error (404 over HTTP) when there is none with that id. */
  async get(session: string, id: string): Promise<OutgoingMessage> {
    const message = await this.deps.store.getOutgoing(session, id);
    if (!message) throw usageError('E_MESSAGE_UNKNOWN', `no message '${id}' in session '${session}'`);
    return message;
  }
}

/** Why a message did not reach the state its caller waited for. */
function failure(message: OutgoingMessage, wait: WaitState): SendError {
  if (message.status === 'rejected' && message.code === NOT_ON_WHATSAPP) {
    return new SendError(
      ExitCode.usage,
      'E_NOT_ON_WHATSAPP',
      `to: ${message.to.split('@')[0]} is not on WhatsApp`,
      message,
    );
  }
  if (message.status === 'rejected') {
    return new SendError(
      ExitCode.rejected,
      'E_REJECTED',
      `WhatsApp rejected the message (error ${message.code ?? '?'})`,
      message,
    );
  }
  if (message.status === 'cancelled') {
    return new SendError(ExitCode.unavailable, 'E_CANCELLED', 'the message was cancelled before it was sent', message);
  }
  if (message.status === 'unknown') {
    return new SendError(
      ExitCode.unavailable,
      'E_UNKNOWN',
      'the connection closed before WhatsApp acknowledged the message: its outcome is unknown (the owner sends it again with the same id)',
      message,
    );
  }
  return new SendError(
    ExitCode.unavailable,
    'E_TIMEOUT',
    `the message did not reach ${wait} in time; it is ${message.status}`,
    message,
  );
}
