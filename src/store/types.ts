/**
 * The storage interface every backend implements (SQLite and PostgreSQL), and the records it
 * deals in. Values are opaque text here: serialization belongs to src/auth/, so a backend only has
 * to store strings transactionally. test/contract/session-store.ts is the one suite every backend passes.
 */
import type { ChangeListener } from './changes.js';

export type { ChangeListener, StoreChange } from './changes.js';

import type { EventType } from '../event-types.js';

export { EVENT_TYPES, type EventType } from '../event-types.js';

export type SessionState = 'unpaired' | 'paired' | 'logged_out' | 'replaced';
export type ConnectionState = 'open' | 'connecting' | 'closed';

export interface Lease {
  ownerId: string;
  host: string;
  pid: number;
  /** Epoch milliseconds. A lease whose expiry has passed belongs to nobody. */
  expiresAt: number;
}

export interface LastDisconnect {
  code: number | null;
  reason: string;
  at: string;
}

export interface SessionRecord {
  id: string;
  label: string | null;
  state: SessionState;
  jid: string | null;
  name: string | null;
  createdAt: string;
  pairedAt: string | null;
  lastConnectedAt: string | null;
  lastDisconnect: LastDisconnect | null;
  /** As last written by the session's owner; only meaningful while that owner's lease is live. */
  connection: ConnectionState;
  lease: Lease | null;
  /** Data key of a stored value that is not valid JSON. Checked (for creds) by getSession only: listSessions never reads values. */
  corruptKey: string | null;
}

/** What a creds write tells the registry, so `wa status` never has to parse credentials. */
export interface CredsSummary {
  paired: boolean;
  jid: string | null;
  name: string | null;
}

/** A change to one stored value: text to upsert, or null to delete. */
export type ValueChange = readonly [dataKey: string, value: string | null];

export interface SessionPatch {
  state?: SessionState;
  connection?: ConnectionState;
  lastConnectedAt?: string;
  lastDisconnect?: LastDisconnect | null;
}

export type Takeover = boolean | { from: string };

export type LeaseResult = { acquired: true; lease: Lease } | { acquired: false; holder: Lease };

export interface WriteOptions {
  /**
   * The writer's lease owner id. When given, the write is checked inside its own transaction: it applies
   * only while the session's lease row has this owner and has not expired by the database's clock (the
   * clock each backend times leases by); otherwise it throws E_LEASE_LOST (exit 6) and applies nothing. So a
   * deposed owner can never commit over the new owner's state.
   */
  fence?: string | undefined;
}

export interface MetaInsert {
  /** The stored value; undefined only when `unlessValues` found auth values and nothing was set. */
  value: string | undefined;
  inserted: boolean;
}

/** What a message is, as the README ("Receiving messages", `wa listen --json`) names it. */
export const MESSAGE_KINDS = [
  'text',
  'image',
  'video',
  'audio',
  'document',
  'sticker',
  'location',
  'contact',
  'reaction',
  'other',
] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/**
 * One received message, mapped from a WAMessage (src/session/capture.ts). Its key is session + chat +
 * from + id: WhatsApp may deliver it again (a re-sent stanza, an offline replay) and it is kept once.
 */
export interface IncomingMessage {
  id: string;
  chat: string;
  /** The sender: the participant in a group, the chat in a 1:1 chat, the account itself for `fromMe`. */
  from: string;
  /** Sent by another device of this account (the phone); stored with direction 'out'. */
  fromMe: boolean;
  /** The sender's push name, when WhatsApp sent one. */
  name: string | null;
  /** WhatsApp's message timestamp, ISO 8601; null when it had none. */
  sentAt: string | null;
  kind: MessageKind;
  /** The text, or the caption of media; null when there is none. Sealed with WA_SECRET. */
  text: string | null;
  /** The whole WAMessage as JSON text (Buffers as BufferJSON writes them). Sealed with WA_SECRET. */
  raw: string;
}

interface EventBase {
  /** The position in the append-only log: a decimal string, increasing. */
  cursor: string;
  session: string;
  /** When the event was stored, ISO 8601. */
  at: string;
}

export interface MessageEvent extends EventBase, Omit<IncomingMessage, 'raw'> {
  type: 'message';
  /** True for the offline backlog WhatsApp replays at login (Baileys' `append` upserts). */
  replay: boolean;
  /** The stored JSON text of the WAMessage; printed as JSON by `wa listen`. */
  raw: string;
}

export interface UndecryptableEvent extends EventBase {
  type: 'undecryptable';
  id: string;
  chat: string;
  from: string;
}

export interface ConnectionEvent extends EventBase {
  type: 'connection';
  connection: 'open' | 'closed';
  code: number | null;
  reason: string | null;
}

export interface StateEvent extends EventBase {
  type: 'state';
  state: SessionState;
}

/** A sent message (the outbox) changed state: `chat` is its recipient. */
export interface StatusEvent extends EventBase {
  type: 'status';
  id: string;
  chat: string;
  status: OutgoingStatus;
  code: string | null;
}

export type StoredEvent = MessageEvent | UndecryptableEvent | ConnectionEvent | StateEvent | StatusEvent;

/** EVENT_TYPES (src/event-types.ts) names every StoredEvent type and no other: checked when compiling. */
type Assert<T extends true> = T;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export type EventTypesMatch = Assert<Same<EventType, StoredEvent['type']>>;

/** What appendEvent takes: everything but what the store assigns (cursor, session, at). */
export type EventInput =
  | Omit<UndecryptableEvent, keyof EventBase>
  | Omit<ConnectionEvent, keyof EventBase>
  | Omit<StateEvent, keyof EventBase>;

export interface ReadEventsOptions {
  /** Only events after this cursor (exclusive); without it, from the oldest kept event. */
  since?: string | undefined;
  /** Only these sessions; all when absent or empty. */
  sessions?: readonly string[] | undefined;
  /** At most this many events (oldest first). */
  limit?: number | undefined;
}

export interface PruneResult {
  messages: number;
  events: number;
}

/**
 * The states of an outgoing message (README "Sending messages"). `queued` → `sending` (persisted before the bytes
 * are written) → `sent` (WhatsApp's server ack) → `delivered` → `read`; `rejected` (the ack carried an
 * error code) and `cancelled` are final; `unknown` is an ambiguous send (the connection closed after the
 * write and before the ack) that the owner sends again with the same id.
 */
export const OUTGOING_STATUSES = [
  'queued',
  'sending',
  'unknown',
  'sent',
  'delivered',
  'read',
  'rejected',
  'cancelled',
] as const;
export type OutgoingStatus = (typeof OUTGOING_STATUSES)[number];

/** One message of the outbox. */
export interface OutgoingMessage {
  /** The WhatsApp message id, chosen before the message is stored (it is sent with this very id). */
  id: string;
  session: string;
  /** The normalized recipient jid (`…@s.whatsapp.net` or `…@lid`). */
  to: string;
  /** Sealed with WA_SECRET. */
  text: string;
  /** The caller's idempotency key: unique per session. */
  key: string | null;
  status: OutgoingStatus;
  /** WhatsApp's error code for `rejected`, or a reason wa gives (`not-on-whatsapp`). */
  code: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface OutgoingInput {
  id: string;
  to: string;
  text: string;
  key?: string | null | undefined;
}

export interface EnqueueResult {
  message: OutgoingMessage;
  /** False when the session already had a message with this key: that one is returned, nothing is added. */
  created: boolean;
}

/** What `wa status` shows of a session's outbox. */
export interface OutboxCounts {
  queued: number;
  unknown: number;
}

/**
 * Where webhook delivery of one session stands (README "Webhooks"): one row per session, moved only by
 * the session's lease owner (fenced). Events after `cursor` (of the configured types) are pending; the
 * first of them is the current one, whose failed attempts are counted here. A session without a row has
 * delivered nothing yet: delivery starts at its oldest kept event.
 */
export interface WebhookPosition {
  session: string;
  /** The last event delivered, dead or skipped (not of a configured type); '0' before any. */
  cursor: string;
  /** The event the failure fields belong to (the current one), or null when it has not failed. */
  failingCursor: string | null;
  /** Failed attempts of the current event. */
  attempts: number;
  /** Epoch ms of the current event's first failed attempt: it is given up on (dead) a max age after it. */
  firstFailedAt: number | null;
  /** Epoch ms of the current event's next attempt. */
  nextAt: number | null;
  /** The latest failure of any event, kept after a later success (attempts 0 then says all is well). */
  lastError: string | null;
  delivered: number;
  dead: number;
  updatedAt: string;
}

/**
 * What happened to the event at a cursor. `delivered`, `dead` and `skipped` (filtered out) move the
 * position to it; `failed` records an attempt of it (`at`, the attempt's time, becomes its first failure
 * when it had none) and when to try again (`nextAt`), leaving the position where it is. Times are epoch ms
 * of the caller's clock.
 */
export type WebhookOutcome =
  | { result: 'delivered' }
  | { result: 'skipped' }
  | { result: 'dead'; error: string }
  | { result: 'failed'; error: string; at: number; nextAt: number };

export interface WebhookStatsOptions {
  /** Count only events of these types as pending (WA_WEBHOOK_EVENTS); all types when absent. */
  types?: readonly EventType[] | undefined;
  /** Every registered session (webhooks configured); otherwise only sessions with a position row. */
  allSessions?: boolean | undefined;
}

/** What `wa status` and /metrics show of a session's webhook delivery. */
export interface WebhookStats {
  /** Events after the position, of the counted types (the current one included). */
  pending: number;
  dead: number;
  delivered: number;
  /** Failed attempts of the current event (0: it has not failed). */
  attempts: number;
  /** ISO 8601 time of the current event's next attempt, when it failed. */
  nextAttemptAt: string | null;
  lastError: string | null;
  /** Whether the session has a position row (it has been delivered to, or tried). */
  tracked: boolean;
}

export interface SessionStore {
  readonly backend: 'sqlite' | 'postgres';
  /** Where the data lives, fit to print (a path, or a URL without its password). */
  readonly location: string;

  /**
   * Every session, registered or found in `whatsapp_auth` only (those are adopted), ordered by id. Ids found
   * there that are not valid session ids (SESSION_ID_PATTERN) are neither adopted nor listed: see skippedIds.
   */
  listSessions(): Promise<SessionRecord[]>;
  /**
   * Session ids found in `whatsapp_auth` without a registry row that were not adopted because they are not
   * valid session ids (foreign writers), as seen by the last listSessions/getSession/createSession; the
   * CLI can warn about them. Their rows are left untouched.
   */
  readonly skippedIds: readonly string[];
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** Registers a new session; throws E_SESSION_EXISTS (exit 2) when the id is taken. */
  createSession(id: string, label: string | null): Promise<SessionRecord>;
  /** Registers the session if it is not yet known (library use, import). */
  ensureSession(id: string): Promise<void>;
  /**
   * Deletes the session, its auth data, its lease, its messages and events, its outbox and its webhook
   * position. Returns false when it did not exist.
   */
  deleteSession(id: string): Promise<boolean>;
  updateSession(id: string, patch: SessionPatch): Promise<void>;

  readCreds(id: string): Promise<string | undefined>;
  /** Saves the whole creds value and its summary in one transaction (fenced: see WriteOptions). */
  writeCreds(id: string, value: string, summary: CredsSummary, options?: WriteOptions): Promise<void>;
  /** Reads the given data keys in one query; missing keys are absent from the map. */
  readValues(id: string, dataKeys: readonly string[]): Promise<Map<string, string>>;
  /** Applies every change in one transaction: all or nothing. Throws on failure (fenced: see WriteOptions). */
  writeValues(id: string, changes: readonly ValueChange[], options?: WriteOptions): Promise<void>;
  /** The data keys of every stored value of the session (creds included), ordered by data key; no values read. */
  listKeys(id: string): Promise<string[]>;
  /** Deletes every stored value but creds, in one transaction (fenced: see WriteOptions); the registry is untouched. */
  clearKeys(id: string, options?: WriteOptions): Promise<void>;
  /** Every stored value of the session (creds included), ordered by data key. */
  readAll(id: string): Promise<Array<[dataKey: string, value: string]>>;
  /** Replaces all auth data of the session in one transaction (registering it if needed). */
  replaceAll(id: string, entries: readonly (readonly [string, string])[], summary: CredsSummary): Promise<void>;
  /** Deletes creds and keys; the session stays registered as `unpaired`. */
  clearAuth(id: string): Promise<void>;

  /**
   * Takes the lease if it is free, expired or already ours; `takeover: true` takes it from anyone, and
   * `takeover: { from }` only from that owner (atomically: not from someone who took it meanwhile).
   */
  acquireLease(id: string, owner: Omit<Lease, 'expiresAt'>, ttlMs: number, takeover: Takeover): Promise<LeaseResult>;
  /** Extends our lease; false when it is no longer ours (taken over, or expired and taken). */
  renewLease(id: string, ownerId: string, ttlMs: number): Promise<boolean>;
  releaseLease(id: string, ownerId: string): Promise<void>;
  /** Extends every lease this owner holds, in one write; returns the session ids it still holds. */
  renewLeases(ownerId: string, ttlMs: number): Promise<string[]>;

  /** A database-wide setting (for example the encryption parameters); undefined when unset. */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  /**
   * Sets a meta entry unless it is already set, atomically (one transaction; the first writer wins).
   * Returns the value stored afterwards (ours, or the one another process stored first) and whether it is
   * ours. With `unlessValues`, nothing is set while any auth value exists, checked in the same transaction:
   * then `value` is undefined. Encryption uses it so that processes sealing a new database together agree
   * on one salt.
   */
  insertMetaIfAbsent(key: string, value: string, options?: { unlessValues?: boolean }): Promise<MetaInsert>;
  /** Whether any session has any stored auth value or message (tells a fresh database from one holding data). */
  hasValues(): Promise<boolean>;
  /**
   * Rewrites every stored value of every session through `transform`, and sets the given meta entries
   * (null deletes), all in one transaction: all or nothing (`wa rekey`). Message text and raw JSON are values
   * too, under the data keys of src/store/message-rows.ts (messageDataKey). Returns the number of values.
   */
  rewriteAll(
    transform: (value: string, sessionId: string, dataKey: string) => string,
    meta: Readonly<Record<string, string | null>>,
  ): Promise<number>;

  /**
   * Stores received messages (deduplicated by session + chat + from + id) and, in the same transaction,
   * one `message` event for each message that was new: a message delivered again adds neither a row nor
   * an event. All or nothing. Returns how many were new.
   */
  storeIncoming(session: string, messages: readonly IncomingMessage[], options: { replay: boolean }): Promise<number>;
  /**
   * Appends an event that describes no stored message. An `undecryptable` event is appended only once per
   * session + chat + from + id, and not at all when that message is already stored (a re-delivered copy
   * that fails to decrypt is not news). Returns whether an event was appended.
   */
  appendEvent(session: string, event: EventInput): Promise<boolean>;
  /** Events oldest first, `since` exclusive (see ReadEventsOptions). */
  readEvents(options?: ReadEventsOptions): Promise<StoredEvent[]>;
  /** The newest cursor in the log ('0' when it is empty): a cheap check for `wa listen --follow`. */
  lastCursor(): Promise<string>;
  /** Deletes messages and events stored more than `olderThanMs` ago; nothing younger. */
  pruneMessages(olderThanMs: number): Promise<PruneResult>;

  /**
   * Adds a message to the session's outbox as `queued`, with a `status` event, in one transaction. With a
   * key the session already used, nothing is added and the existing message is returned.
   */
  enqueueMessage(session: string, input: OutgoingInput): Promise<EnqueueResult>;
  /**
   * Takes the session's next message to send (the oldest `queued` or `unknown` one) and marks it `sending`,
   * atomically; undefined when nothing waits or a message is already `sending` (one in flight per session).
   * Fenced (see WriteOptions): a deposed owner gets E_LEASE_LOST and claims nothing, so it never sends.
   */
  claimNextMessage(session: string, options?: WriteOptions): Promise<OutgoingMessage | undefined>;
  /**
   * Moves a message forward (see canMoveStatus in src/store/outbox-rows.ts), appending a `status` event in
   * the same transaction; a move that is not forward changes nothing. Returns the message as it is after.
   */
  markMessage(
    session: string,
    id: string,
    status: OutgoingStatus,
    code?: string | null,
  ): Promise<OutgoingMessage | undefined>;
  /** Marks every `sending` message of the session `unknown` (a previous owner's ambiguous send); returns how many. */
  abandonInFlight(session: string, options?: WriteOptions): Promise<number>;
  /** Cancels the message if it is still `queued` (atomically); returns it as it is after. */
  cancelMessage(session: string, id: string): Promise<OutgoingMessage | undefined>;
  getOutgoing(session: string, id: string): Promise<OutgoingMessage | undefined>;
  /** Per session with any: how many messages are `queued` and `unknown`. */
  outboxCounts(): Promise<Map<string, OutboxCounts>>;
  /** Outgoing messages by state, for /metrics. */
  outboxTotals(): Promise<Map<OutgoingStatus, number>>;

  /** Sessions with an event after `since` (exclusive): which webhook workers a moved lastCursor concerns. */
  sessionsWithEventsAfter(since: string): Promise<string[]>;

  /** The session's webhook position; undefined before anything was recorded (see WebhookPosition). */
  webhookPosition(session: string): Promise<WebhookPosition | undefined>;
  /**
   * Records what happened to the event at `cursor` (see WebhookOutcome) and returns the position after.
   * Fenced (see WriteOptions): only the session's lease owner moves it; a deposed owner gets E_LEASE_LOST and
   * changes nothing. Never moves backwards: an outcome for a cursor at or before the position changes nothing.
   */
  recordWebhookDelivery(
    session: string,
    cursor: string,
    outcome: WebhookOutcome,
    options: WriteOptions,
  ): Promise<WebhookPosition>;
  /** Per session (see WebhookStatsOptions for which): pending and dead counts and the last error, in one query. */
  webhookStats(options?: WebhookStatsOptions): Promise<Map<string, WebhookStats>>;

  /**
   * Hints that a message was queued (`outbox`) or events appended (`events`) for a session, so readers of
   * the outbox and the log wake at once instead of at their next poll. PostgreSQL: LISTEN/NOTIFY, so writes
   * by any process on any host (src/store/pg-notifications.ts); SQLite: writes made through this store
   * object only (other processes are seen by polling). A hint, not a guarantee: readers still poll.
   * Returns the function that stops listening.
   */
  watchChanges(listener: ChangeListener): () => void;

  /**
   * A warning when the stored data is readable by other users (SQLite: the database file, its -wal/-shm
   * files or its directory readable by group or others), with the chmod that fixes it; undefined when not,
   * and always on PostgreSQL (access is the server's business).
   */
  permissionWarning(): string | undefined;

  /**
   * Makes sure no old version of a rewritten value survives in the database's files (after `wa rekey`):
   * SQLite checkpoints its WAL, rebuilds the file from the live rows (VACUUM) and empties the WAL;
   * PostgreSQL rewrites the auth table without its dead row versions (VACUUM FULL). True when done; false
   * when it could not be (a reader holding the WAL, no table ownership), which leaves data intact.
   */
  compact(): Promise<boolean>;

  /**
   * The store underneath any decorator — this store itself for a backend, the backend for SealedStore —
   * which reads and writes stored text as is. `wa rekey` re-seals there: it reads with one key and writes
   * with another, and sets the encryption parameters, which a SealedStore refuses to do.
   */
  raw(): SessionStore;

  close(): Promise<void>;
}
