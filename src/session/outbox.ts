/**
 * Sending from the outbox (README "Sending messages"): every socket made to send (serve's, `wa send`'s) drains its
 * session's outbox, in order, one message at a time, while it is open. Why it is shaped like this, from
 * node_modules/@whiskeysockets/baileys/lib:
 *
 * - `sendMessage` resolves right after the socket write (Socket/messages-send.js relayMessage), and a clean
 *   server ack emits no event at all (Socket/messages-recv.js handleBadAck only acts on `error`). So the
 *   ack is watched on the WebSocket itself (`CB:ack,class:message`, matched by id): no error → `sent`,
 *   `error` → `rejected` with that code (never retried: retrying a 463 makes a restriction worse).
 * - The id is chosen before the row is written (the caller does, with generateMessageIDV2) and passed as
 *   `messageId`: a retry receipt can call getMessage before sendMessage has resolved, and a resend of an
 *   ambiguous write reuses it, so the recipient keeps one copy.
 * - The row is `sending` (claimNextMessage) before the bytes are written; a connection that closes before
 *   the ack leaves it `unknown`, and the next connection sends it again first.
 * - Contacts WhatsApp moved to LID refuse number-addressed messages (ack 463), and a send to a number keeps
 *   the number on the wire even when the LID is known: a number is resolved with
 *   `signalRepository.lidMapping.getLIDForPN` and the LID is used when there is one. rc14 never checks that
 *   a number exists (`onWhatsApp` does): one that is not is `rejected` with code `not-on-whatsapp`.
 * - Receipts arrive as `messages.update` keyed by the receipting device's jid (not normalized): matched by
 *   id alone, and the status only moves forward in the store, whatever order they come in.
 */
import type { BaileysEventMap, proto, WASocket } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';
import type { OutgoingMessage, SessionStore } from '../store/types.js';

/**
 * How often an idle sender looks for new messages: a cheap indexed read (claimNextMessage reads before it
 * locks). A message queued through the store's change hints (PostgreSQL LISTEN/NOTIFY from any host, or a
 * write in this process) wakes it at once.
 */
export const OUTBOX_POLL_MS = 200;
/** A write with no ack for this long is ambiguous: left `unknown`, and this socket stops sending (it looks dead). */
const ACK_TIMEOUT_MS = 30_000;
/** getMessage answers retry receipts for messages this young only (old ones replayed after a reconnect are noise). */
export const GET_MESSAGE_MAX_AGE_MS = 24 * 3600 * 1000;
/** The code of a message to a number that is not on WhatsApp. */
export const NOT_ON_WHATSAPP = 'not-on-whatsapp';
/** How long a socket takes a number it found on WhatsApp to stay there (see KnownNumbers). */
export const KNOWN_NUMBER_TTL_MS = 10 * 60 * 1000;
/** How many numbers a socket remembers at most (the oldest is forgotten first). */
const KNOWN_NUMBERS_MAX = 1000;

const isLeaseLost = (error: unknown): boolean =>
  error instanceof Error && (error as { code?: unknown }).code === 'E_LEASE_LOST';

type Tools = { jidNormalizedUser: (jid: string | undefined) => string };

export type Resolution = { jid: string } | { notOnWhatsApp: true };

/**
 * Numbers one socket found on WhatsApp, for KNOWN_NUMBER_TTL_MS. `onWhatsApp` is a usync query, a round
 * trip to WhatsApp (lib/Socket/socket.js executeUSyncQuery) that WhatsApp rate-limits; asked once per
 * message, a burst of messages to one contact would ask once per message (bench:messages (b) measures the
 * cost). Only "it exists" is remembered: a number not on WhatsApp is asked about again every time, so no
 * message is ever rejected on an old answer.
 */
export class KnownNumbers {
  private readonly seen = new Map<string, number>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  has(jid: string): boolean {
    const at = this.seen.get(jid);
    if (at === undefined) return false;
    if (this.now() - at < KNOWN_NUMBER_TTL_MS) return true;
    this.seen.delete(jid);
    return false;
  }

  add(jid: string): void {
    this.seen.delete(jid); // re-inserted last: the Map's order is the age order
    this.seen.set(jid, this.now());
    if (this.seen.size > KNOWN_NUMBERS_MAX) this.seen.delete(this.seen.keys().next().value!);
  }
}

/**
 * Where a message to `to` goes: a LID as is; a number only if it is on WhatsApp (asked unless `known` has
 * it), to its LID when WhatsApp has one for it. The LID is looked up every time (Baileys keeps the mappings
 * in an in-memory cache in front of the store: lib/Signal/lid-mapping.js), so a contact that moved to LID
 * is followed at once. Throws when the socket cannot ask (closed, timed out).
 */
export async function resolveRecipient(
  sock: WASocket,
  to: string,
  tools: Tools,
  known?: KnownNumbers,
): Promise<Resolution> {
  if (to.endsWith('@lid')) return { jid: to };
  if (!known?.has(to)) {
    const [found] = (await sock.onWhatsApp(to)) ?? [];
    if (!found?.exists) return { notOnWhatsApp: true };
    known?.add(to);
  }
  const lid = await sock.signalRepository.lidMapping.getLIDForPN(to);
  return { jid: lid ? tools.jidNormalizedUser(lid) : to };
}

/**
 * Baileys' getMessage (config): the text of an outgoing message, for a recipient's retry receipt. Only
 * messages that were written (never a queued or cancelled one) and younger than GET_MESSAGE_MAX_AGE_MS.
 */
export function outboxMessageSource(
  store: SessionStore,
  session: string,
  logger: Logger,
): (key: proto.IMessageKey) => Promise<proto.IMessage | undefined> {
  return async (key) => {
    if (!key.id) return undefined;
    try {
      const message = await store.getOutgoing(session, key.id);
      if (!message || message.status === 'queued' || message.status === 'cancelled') return undefined;
      if (Date.now() - Date.parse(message.createdAt) > GET_MESSAGE_MAX_AGE_MS) return undefined;
      return { conversation: message.text };
    } catch (error) {
      logger.warn({ err: error, id: key.id }, 'could not read an outgoing message for a retry receipt');
      return undefined;
    }
  };
}

type AckOutcome = { kind: 'ack' } | { kind: 'error'; code: string } | { kind: 'closed' } | { kind: 'timeout' };

interface AckNode {
  attrs: Record<string, string | undefined>;
}

/** One socket's sender: starts draining when the socket opens, stops when it closes. */
export class OutboxSender {
  private readonly waiters = new Map<string, (outcome: AckOutcome) => void>();
  private open = false;
  private halted = false;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  /** Status writes from receipts, chained so close() can wait for them. */
  private writes: Promise<unknown> = Promise.resolve();
  /** Stops the store's change hints: a message queued for this session wakes an idle loop at once. */
  private readonly unwatch: () => void;
  /** Per socket: a new connection asks WhatsApp again. */
  private readonly known = new KnownNumbers();

  private readonly sock: WASocket;
  private readonly store: SessionStore;
  private readonly session: string;
  private readonly log: Logger;
  private readonly tools: Tools;
  /** Our lease owner id: a claim under a lease that is no longer ours fails, so a deposed owner never sends. */
  private readonly fence: string | undefined;

  constructor(sock: WASocket, store: SessionStore, session: string, log: Logger, tools: Tools, fence?: string) {
    this.fence = fence;
    this.sock = sock;
    this.store = store;
    this.session = session;
    this.log = log;
    this.tools = tools;
    sock.ws.on('CB:ack,class:message', (node: AckNode) => {
      const id = node.attrs.id;
      const waiter = id === undefined ? undefined : this.waiters.get(id);
      if (!waiter) return;
      waiter(node.attrs.error ? { kind: 'error', code: node.attrs.error } : { kind: 'ack' });
    });
    sock.ev.on('connection.update', (update) => {
      if (update.connection === 'open' && !this.open) {
        this.open = true;
        this.loopDone = this.loop();
      }
      if (update.connection === 'close') this.stop();
    });
    sock.ev.on('messages.update', (updates) => this.onUpdates(updates));
    this.unwatch = store.watchChanges((change) => {
      if (change.kind === 'outbox' && change.session === session) this.wake?.();
    });
  }

  /** Stops sending: a message waiting for its ack becomes `unknown`. */
  stop(): void {
    this.open = false;
    this.unwatch();
    for (const waiter of this.waiters.values()) waiter({ kind: 'closed' });
    this.wake?.();
  }

  /** Resolves once the loop has stopped and every status write landed. */
  async finished(): Promise<void> {
    await this.loopDone;
    await this.writes;
  }

  private onUpdates(updates: BaileysEventMap['messages.update']): void {
    for (const { key, update } of updates) {
      if (!key.fromMe || !key.id || typeof update.status !== 'number') continue;
      // proto.WebMessageInfo.Status: 2 SERVER_ACK (another own device's `sender` receipt), 3 DELIVERY_ACK, 4 READ, 5 PLAYED.
      const code = Number(update.status);
      const status = code >= 4 ? 'read' : code === 3 ? 'delivered' : code === 2 ? 'sent' : null;
      if (!status) continue;
      const id = key.id;
      this.writes = this.writes.then(() =>
        this.store.markMessage(this.session, id, status).catch((error: unknown) => {
          this.log.warn({ err: error, id }, 'could not record a message status');
        }),
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    try {
      // A `sending` row found now was written by a connection that is gone (ours before a reconnect, or a
      // previous owner's): its outcome is unknown, and it is sent again first, with the same id.
      await this.store.abandonInFlight(this.session, { fence: this.fence });
    } catch (error) {
      if (isLeaseLost(error)) return this.leaseLost();
      this.log.warn({ err: error }, 'could not check the outbox; retrying');
    }
    while (this.open && !this.halted) {
      let message: OutgoingMessage | undefined;
      try {
        message = await this.store.claimNextMessage(this.session, { fence: this.fence });
      } catch (error) {
        if (isLeaseLost(error)) return this.leaseLost();
        this.log.warn({ err: error }, 'could not read the outbox; retrying');
      }
      if (!message) {
        await this.sleep(OUTBOX_POLL_MS);
        continue;
      }
      await this.sendOne(message);
    }
  }

  private leaseLost(): void {
    this.halted = true;
    this.log.warn('the lease is no longer ours: this socket sends nothing more');
  }

  private async mark(
    message: OutgoingMessage,
    status: OutgoingMessage['status'],
    code: string | null = null,
  ): Promise<void> {
    await this.store.markMessage(this.session, message.id, status, code).catch((error: unknown) => {
      this.log.error({ err: error, id: message.id, status }, 'could not record a message status');
    });
  }

  private async sendOne(message: OutgoingMessage): Promise<void> {
    const { id } = message;
    let target: Resolution;
    try {
      target = await resolveRecipient(this.sock, message.to, this.tools, this.known);
    } catch (error) {
      // Nothing was written; `unknown` is resent with the same id by the next connection, which costs nothing.
      this.log.warn({ err: error, id }, 'could not look the recipient up; will try again after reconnecting');
      this.halted = true;
      await this.mark(message, 'unknown');
      return;
    }
    if ('notOnWhatsApp' in target) {
      this.log.warn({ id }, 'recipient is not on WhatsApp; message rejected');
      await this.mark(message, 'rejected', NOT_ON_WHATSAPP);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const ack = new Promise<AckOutcome>((resolve) => {
      this.waiters.set(id, resolve);
      timer = setTimeout(() => resolve({ kind: 'timeout' }), ACK_TIMEOUT_MS);
    });
    if (!this.open) this.waiters.get(id)?.({ kind: 'closed' });
    try {
      await this.sock.sendMessage(target.jid, { text: message.text }, { messageId: id });
    } catch (error) {
      if (this.open) {
        // Refused before the write (an encryption or key fetch failure): sending again would fail again.
        this.log.warn({ err: error, id }, 'message could not be sent');
        clearTimeout(timer);
        this.waiters.delete(id);
        await this.mark(message, 'rejected', 'send-failed');
        return;
      }
      // The connection went down under it: written or not, it is ambiguous (the ack wait below says closed).
    }
    const outcome = await ack;
    clearTimeout(timer);
    this.waiters.delete(id);
    switch (outcome.kind) {
      case 'ack':
        this.log.info({ id }, 'message sent');
        return this.mark(message, 'sent');
      case 'error':
        this.log.warn({ id, code: outcome.code }, 'message rejected by WhatsApp');
        return this.mark(message, 'rejected', outcome.code);
      case 'timeout':
        this.halted = true;
        this.log.warn({ id }, 'no server ack for a sent message; it will be sent again after reconnecting');
        return this.mark(message, 'unknown');
      case 'closed':
        this.log.warn({ id }, 'connection closed before the server ack; the message will be sent again');
        return this.mark(message, 'unknown');
    }
  }
}
