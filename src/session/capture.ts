/**
 * Everything that arrives is kept (README "Receiving messages"): every socket the real factory makes
 * (src/session/baileys.ts) gets a MessageCapture, which stores each message Baileys upserts before the
 * socket is allowed to close.
 *
 * What rc14 does, and why this is shaped as it is (node_modules/@whiskeysockets/baileys/lib):
 * - The delivery receipt leaves before listeners see the message (Socket/messages-recv.js handleMessage),
 *   so a message not stored by this listener is lost for good: WhatsApp will not send it again.
 * - Upserts are held in the event buffer (Utils/event-buffer.js) until the offline notification
 *   (Socket/socket.js `CB:ib,,offline` flushes it), and on a first connection again for up to 20 s
 *   (Socket/chats.js AwaitingInitialSync). Baileys' end() destroys the buffer with whatever it holds, so
 *   the buffer is flushed on every close (the `connection.update` close event is emitted, unbuffered,
 *   before ev.destroy()) and before wa ends a socket itself.
 * - `notify` upserts are live messages, `append` upserts the offline backlog (`replay: true`). Messages
 *   of the account's other devices (its phone) come as `fromMe` and are kept too.
 * - A copy that does not decrypt becomes a CIPHERTEXT stub (`messageStubType` 2, Utils/decode-wa-message.js):
 *   kept as an `undecryptable` event; the same id arriving decrypted later is still its one `message`.
 *
 * Writes run one after another (event order is arrival order); a failed write is logged at error and
 * retried, and one that keeps failing is logged at error with the message ids it could not store. Log
 * lines carry counts and ids, never message content.
 *
 * Live messages come one upsert each (one per stanza, Socket/messages-recv.js upsertMessage), and each
 * write is a transaction with its own fsync. Messages that arrive while earlier writes are still queued
 * (one retrying after an error, one waiting for a lock another process holds) are stored together, in one
 * transaction (a Batch), so a session that fell behind catches up with one commit instead of one per
 * message. A batch closes when its write starts and its write starts as soon as the writes before it are
 * done: nothing is held back to gather more, so the window between Baileys' delivery receipt and the
 * commit (README "Receiving messages", the one gap) is never widened on purpose. An undecryptable stub or
 * a connection event closes the batch too, keeping the log in arrival order.
 *
 * Message writes are not lease-fenced: a message is only ever added (deduplicated by its key), so a
 * deposed owner storing one more copy harms nothing, while refusing it could lose the only copy.
 */
import type { BaileysEventMap, WAMessage, WASocket } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';
import type { EventInput, IncomingMessage, MessageKind, SessionStore } from '../store/types.js';
import { classifyDisconnect } from './disconnect.js';

type Baileys = typeof import('@whiskeysockets/baileys');

/** The parts of Baileys the mapping uses (passed in: this module never loads Baileys itself). */
export type CaptureTools = Pick<
  Baileys,
  'BufferJSON' | 'normalizeMessageContent' | 'getContentType' | 'jidNormalizedUser' | 'proto'
>;

export type Captured =
  | { type: 'message'; message: IncomingMessage }
  | { type: 'undecryptable'; id: string; chat: string; from: string };

const KIND_BY_CONTENT: Readonly<Record<string, MessageKind>> = {
  conversation: 'text',
  extendedTextMessage: 'text',
  imageMessage: 'image',
  videoMessage: 'video',
  ptvMessage: 'video',
  audioMessage: 'audio',
  documentMessage: 'document',
  stickerMessage: 'sticker',
  locationMessage: 'location',
  liveLocationMessage: 'location',
  contactMessage: 'contact',
  contactsArrayMessage: 'contact',
  reactionMessage: 'reaction',
};

/** messageTimestamp is a number or a protobuf Long (Utils/generics.js toNumber does the same). */
function timestampOf(value: WAMessage['messageTimestamp']): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return value;
  return typeof value.toNumber === 'function' ? value.toNumber() : Number(value.low);
}

/**
 * Maps one upserted WAMessage to what is stored, or undefined for what is skipped: messages without an
 * id or chat, and protocol and system messages without content of their own — `protocolMessage`
 * (history-sync and app-state-key notifications, ephemeral settings, peer-data operations: Baileys acts on
 * them in Utils/process-message.js) except revokes and edits, which users see; stanzas that carry only a
 * `senderKeyDistributionMessage` or `messageContextInfo` (getContentType finds no content); and stubs
 * other than CIPHERTEXT without a message (group notifications, which have no text).
 */
export function toCaptured(msg: WAMessage, ownJid: string | undefined, b: CaptureTools): Captured | undefined {
  const id = msg.key?.id;
  const remote = msg.key?.remoteJid;
  if (!id || !remote) return undefined;
  const chat = b.jidNormalizedUser(remote) || remote;
  const fromMe = msg.key.fromMe === true;
  const participant = msg.key.participant ? b.jidNormalizedUser(msg.key.participant) || msg.key.participant : undefined;
  const own = ownJid ? b.jidNormalizedUser(ownJid) || ownJid : undefined;
  const from = participant ?? (fromMe ? (own ?? 'me') : chat);

  if (msg.messageStubType === b.proto.WebMessageInfo.StubType.CIPHERTEXT) {
    return { type: 'undecryptable', id, chat, from };
  }
  const content = b.normalizeMessageContent(msg.message);
  const contentType = b.getContentType(content ?? undefined);
  if (!content || !contentType) return undefined;
  if (contentType === 'protocolMessage') {
    const kind = content.protocolMessage?.type;
    const { REVOKE, MESSAGE_EDIT } = b.proto.Message.ProtocolMessage.Type;
    if (kind !== REVOKE && kind !== MESSAGE_EDIT) return undefined;
  }
  const kind = KIND_BY_CONTENT[contentType] ?? 'other';
  const text =
    content.conversation ||
    content.extendedTextMessage?.text ||
    content.imageMessage?.caption ||
    content.videoMessage?.caption ||
    content.documentMessage?.caption ||
    content.reactionMessage?.text ||
    null;
  const seconds = timestampOf(msg.messageTimestamp);
  return {
    type: 'message',
    message: {
      id,
      chat,
      from,
      fromMe,
      name: msg.pushName || null,
      sentAt: seconds > 0 ? new Date(seconds * 1000).toISOString() : null,
      kind,
      text,
      // The whole WAMessage, nothing WhatsApp sent dropped: Buffers (and protobuf bytes) as BufferJSON writes them.
      raw: JSON.stringify(msg, b.BufferJSON.replacer),
    },
  };
}

/** Delays between attempts of a failed write: about 45 s in all before it is given up (and logged as lost). */
const RETRY_DELAYS_MS = [250, 1000, 3000, 10_000, 30_000];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Upserted messages of one kind (live or backlog) waiting for their write, which takes every one of them. */
interface Batch {
  replay: boolean;
  messages: IncomingMessage[];
}

export interface CaptureHooks {
  /** Called with the number of new messages after each stored batch (serve counts them for /metrics). */
  onStored?: ((count: number) => void) | undefined;
  /** Called with the number of new undecryptable events. */
  onUndecryptable?: ((count: number) => void) | undefined;
  /**
   * Where the capture's own lines go (serve: wa's logger, while Baileys' logger is kept at warn);
   * default the socket's logger. Counts and ids only, never content.
   */
  logger?: Logger | undefined;
}

export class MessageCapture {
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  /** The batch still taking messages: its write is queued and has not started. */
  private open: Batch | undefined;
  private closed = false;
  private backlogSeen = false;
  private readonly backlog: Promise<void>;
  private markBacklog: () => void = () => undefined;
  /** Resolves once the socket has closed and every write it started is done (or given up). */
  readonly finished: Promise<void>;
  private markClosed: () => void = () => undefined;

  private readonly socket: WASocket;
  private readonly store: SessionStore;
  private readonly sessionId: string;
  private readonly logger: Logger;
  private readonly tools: CaptureTools;
  private readonly hooks: CaptureHooks;
  /** wa's own lines about what was stored (see CaptureHooks.logger). */
  private readonly log: Logger;

  constructor(
    socket: WASocket,
    store: SessionStore,
    sessionId: string,
    logger: Logger,
    tools: CaptureTools,
    hooks: CaptureHooks = {},
  ) {
    this.socket = socket;
    this.store = store;
    this.sessionId = sessionId;
    this.logger = logger;
    this.tools = tools;
    this.hooks = hooks;
    this.log = hooks.logger ?? logger;
    this.backlog = new Promise((resolve) => (this.markBacklog = resolve));
    const closed = new Promise<void>((resolve) => (this.markClosed = resolve));
    this.finished = closed.then(() => this.chain);
    socket.ev.on('messages.upsert', (upsert) => this.onUpsert(upsert));
    socket.ev.on('connection.update', (update) => {
      if (update.connection === 'close') {
        // Emitted by Baileys' end() just before ev.destroy() throws away what the buffer holds.
        this.flush();
        const disconnect = classifyDisconnect(update.lastDisconnect?.error);
        this.event({ type: 'connection', connection: 'closed', code: disconnect.code, reason: disconnect.reason });
        this.markClosed();
      }
      if (update.connection === 'open')
        this.event({ type: 'connection', connection: 'open', code: null, reason: null });
      if (update.receivedPendingNotifications === true && !this.backlogSeen) {
        this.backlogSeen = true;
        // The backlog was flushed to us just before this update (Socket/socket.js). On a first connection
        // chats.js now buffers again for up to 20 s waiting for a history sync wa does not use; messages
        // held there have had their receipts sent already, so they are released (and stored) at once.
        this.flush();
        // Resolved behind the writes the flush started: "backlog stored" means its writes are done.
        void this.enqueue(() => Promise.resolve(this.markBacklog()));
      }
    });
  }

  /** Emits what Baileys' event buffer holds, so it reaches the store instead of being dropped. */
  flush(): void {
    try {
      this.socket.ev.flush();
    } catch (error) {
      this.log.warn({ err: error }, 'could not flush the event buffer');
    }
  }

  /** Resolves true once the offline backlog has been replayed and stored, false if that took longer than maxMs. */
  async untilBacklogStored(maxMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.backlog.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), maxMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Waits (at most maxMs) for every write started so far; true when none is left. */
  async settle(maxMs: number): Promise<boolean> {
    if (this.pending === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.chain.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), maxMs))),
    ]);
    clearTimeout(timer);
    if (!done) this.log.error({ pending: this.pending }, 'message writes still pending when the socket closed');
    return done;
  }

  /** After close, connection events are no longer recorded (the store may be closing); messages still are. */
  close(): void {
    this.closed = true;
  }

  private onUpsert({ messages, type }: BaileysEventMap['messages.upsert']): void {
    const ownJid = this.socket.authState?.creds?.me?.id;
    const stored: IncomingMessage[] = [];
    const stubs: Array<Extract<Captured, { type: 'undecryptable' }>> = [];
    for (const msg of messages) {
      let captured: Captured | undefined;
      try {
        captured = toCaptured(msg, ownJid, this.tools);
      } catch (error) {
        // Never expected; the id alone is logged, and the message is kept as undecryptable rather than lost.
        this.log.error({ err: error, id: msg.key?.id }, 'could not read a received message');
        if (msg.key?.id && msg.key.remoteJid)
          captured = { type: 'undecryptable', id: msg.key.id, chat: msg.key.remoteJid, from: msg.key.remoteJid };
      }
      if (captured?.type === 'message') stored.push(captured.message);
      else if (captured) stubs.push(captured);
      else this.log.debug({ id: msg.key?.id, type }, 'skipped a message without content of its own');
    }
    if (stored.length > 0) this.addToBatch(stored, type === 'append');
    for (const stub of stubs) {
      void this.enqueue(async () => {
        const { type: _t, ...where } = stub;
        const added = await this.withRetry(
          () => this.store.appendEvent(this.sessionId, { type: 'undecryptable', ...where }),
          [stub.id],
        );
        if (added) {
          this.hooks.onUndecryptable?.(1);
          this.log.warn({ session: this.sessionId, id: stub.id, chat: stub.chat }, 'message could not be decrypted');
        }
      });
    }
  }

  /** Adds the messages to the open batch of their kind, or queues a new batch's write. */
  private addToBatch(messages: IncomingMessage[], replay: boolean): void {
    if (this.open?.replay === replay) {
      this.open.messages.push(...messages);
      return;
    }
    const batch: Batch = { replay, messages: [...messages] };
    void this.enqueue(async () => {
      if (this.open === batch) this.open = undefined; // its turn: what it holds now is what it writes
      const count = await this.withRetry(
        () => this.store.storeIncoming(this.sessionId, batch.messages, { replay }),
        batch.messages.map((m) => m.id),
      );
      if (count === undefined) return;
      if (count > 0) this.hooks.onStored?.(count);
      this.log.info(
        { session: this.sessionId, received: batch.messages.length, stored: count, replay },
        'messages stored',
      );
    });
    this.open = batch; // after enqueue(), which closes whatever batch was open
  }

  private event(event: EventInput): void {
    if (this.closed) return;
    void this.enqueue(async () => {
      await this.store.appendEvent(this.sessionId, event).catch((error: unknown) => {
        this.log.warn({ err: error, type: event.type }, 'could not record a connection event');
      });
    });
  }

  /** Queues a write behind the others. Anything queued closes the open batch: later messages go after it. */
  private enqueue(work: () => Promise<void>): Promise<void> {
    this.open = undefined;
    this.pending++;
    this.chain = this.chain
      .then(work)
      .catch((error: unknown) => this.log.error({ err: error }, 'message capture failed'))
      .finally(() => void this.pending--);
    return this.chain;
  }

  /** Runs a write, retrying failures; undefined (after an error line naming the ids) when every attempt failed. */
  private async withRetry<T>(write: () => Promise<T>, ids: readonly string[]): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        const delay = RETRY_DELAYS_MS[attempt];
        if (delay === undefined) {
          this.log.error(
            { err: error, session: this.sessionId, ids },
            'could not store received messages; they are lost',
          );
          return undefined;
        }
        this.log.error(
          { err: error, session: this.sessionId, count: ids.length, attempt: attempt + 1, retryInMs: delay },
          'storing received messages failed; retrying',
        );
        await sleep(delay);
      }
    }
  }
}
