/**
 * Encryption at rest, applied: SealedStore is a decorator over any SessionStore backend that seals and
 * unseals `whatsapp_auth.data_value` in the value methods (with src/store/sealing.ts, where the cipher,
 * key derivation and stored parameters are described) and passes registry, lease and meta calls through,
 * so backends stay plain string stores. Whether a database is encrypted is settled lazily (see below).
 */
import { storageError, WaError } from '../errors.js';
import { CREDS_KEY, ENCRYPTION_META_KEY } from './codec.js';
import {
  createSealer,
  DEFAULT_SCRYPT,
  isSealed,
  openSealer,
  parseEncryptionParams,
  secretRequiredError,
  type ScryptCost,
  type Sealer,
} from './sealing.js';
import { messageDataKey } from './message-rows.js';
import { outboxDataKey } from './outbox-rows.js';
import type {
  ChangeListener,
  CredsSummary,
  EnqueueResult,
  OutboxCounts,
  OutgoingInput,
  OutgoingMessage,
  OutgoingStatus,
  EventInput,
  IncomingMessage,
  Lease,
  MetaInsert,
  LeaseResult,
  SessionPatch,
  SessionRecord,
  PruneResult,
  ReadEventsOptions,
  SessionStore,
  StoredEvent,
  Takeover,
  ValueChange,
  WebhookOutcome,
  WebhookPosition,
  WebhookStats,
  WebhookStatsOptions,
  WriteOptions,
} from './types.js';

// Kept importable from here, where they lived before sealing had a module of its own.
export {
  createSealer,
  DEFAULT_SCRYPT,
  ENCRYPTION_META_KEY,
  isSealed,
  openSealer,
  parseEncryptionParams,
  Sealer,
  secretRequiredError,
  type EncryptionParams,
  type ScryptCost,
} from './sealing.js';

export interface SealedStoreOptions {
  /** Undefined: values stay in clear, and an encrypted database refuses value reads and writes. */
  secret?: string | undefined;
  /** Whether a fresh database may be initialized for encryption (false for read-only commands). */
  writable?: boolean | undefined;
  /** scrypt cost for a database initialized here; tests lower it. */
  cost?: ScryptCost | undefined;
}

const clearValuesError = (location: string): WaError =>
  storageError(
    'E_NOT_SEALED',
    `WA_SECRET is set, but the database ${location} holds values stored in clear; wa never mixes sealed and clear values`,
    { hint: 'seal it once with WA_NEW_SECRET=<secret> wa rekey, then run with WA_SECRET=<secret>' },
  );

/**
 * Wraps a backend. Whether the database is encrypted, and whether the secret fits, is settled lazily on the
 * first value call (or `unlock()`), so `wa status`, `wa add` and `wa rm` work without the secret and never
 * pay for scrypt. Everything that fails there fails before the call reads or writes any value.
 */
export class SealedStore implements SessionStore {
  readonly inner: SessionStore;
  readonly #secret: string | undefined;
  readonly #writable: boolean;
  readonly #cost: ScryptCost;
  #sealer: Promise<Sealer | null> | undefined;

  constructor(inner: SessionStore, options: SealedStoreOptions = {}) {
    this.inner = inner;
    this.#secret = options.secret === '' ? undefined : options.secret;
    this.#writable = options.writable ?? true;
    this.#cost = options.cost ?? DEFAULT_SCRYPT;
  }

  get backend(): SessionStore['backend'] {
    return this.inner.backend;
  }

  get location(): string {
    return this.inner.location;
  }

  get skippedIds(): readonly string[] {
    return this.inner.skippedIds;
  }

  /** Settles the encryption state now (commands that open sockets call it first, to fail before taking leases). */
  async unlock(): Promise<void> {
    await this.sealer();
  }

  /** The sealer, or null when values are stored in clear. Failures are not cached (the next call tries again). */
  private sealer(): Promise<Sealer | null> {
    this.#sealer ??= this.resolve().catch((error: unknown) => {
      this.#sealer = undefined;
      throw error;
    });
    return this.#sealer;
  }

  private async resolve(): Promise<Sealer | null> {
    const params = parseEncryptionParams(await this.inner.getMeta(ENCRYPTION_META_KEY), this.location);
    if (params) {
      if (this.#secret === undefined) throw secretRequiredError(this.location);
      return openSealer(this.#secret, params, this.location);
    }
    if (this.#secret === undefined) return null;
    if (await this.inner.hasValues()) throw clearValuesError(this.location);
    // A read-only open of an empty database has nothing to unseal, and may not write the parameters.
    if (!this.#writable) return null;
    const created = await createSealer(this.#secret, this.#cost);
    // Several processes may seal a new database at once (replicas starting together): the parameters are
    // inserted only if absent, together with the "no values yet" check, in one transaction. The first
    // writer's salt wins; every other process derives its key from the stored parameters instead of its own.
    const claim = await this.inner.insertMetaIfAbsent(ENCRYPTION_META_KEY, JSON.stringify(created.params), {
      unlessValues: true,
    });
    if (claim.inserted) return created.sealer;
    if (claim.value === undefined) throw clearValuesError(this.location);
    const stored = parseEncryptionParams(claim.value, this.location)!;
    return openSealer(this.#secret, stored, this.location);
  }

  /** Seals one value as this store would store it (tests use it to write raw rows). */
  async seal(sessionId: string, dataKey: string, value: string): Promise<string> {
    const sealer = await this.sealer();
    return sealer ? sealer.seal(value, sessionId, dataKey) : value;
  }

  listSessions(): Promise<SessionRecord[]> {
    return this.inner.listSessions();
  }

  /**
   * The backend checks creds with a JSON test on the stored text, which sealed text always fails; the
   * check is redone here on the unsealed value when the secret is at hand, and skipped when it is not.
   */
  async getSession(id: string): Promise<SessionRecord | undefined> {
    const record = await this.inner.getSession(id);
    if (!record) return record;
    const stored = await this.inner.readCreds(id);
    if (stored === undefined || !isSealed(stored)) return record;
    let sealer: Sealer | null;
    try {
      sealer = await this.sealer();
    } catch (error) {
      if (error instanceof WaError) return { ...record, corruptKey: null };
      throw error;
    }
    if (!sealer) return { ...record, corruptKey: null };
    try {
      JSON.parse(sealer.unseal(stored, id, CREDS_KEY));
      return { ...record, corruptKey: null };
    } catch {
      return { ...record, corruptKey: CREDS_KEY };
    }
  }

  createSession(id: string, label: string | null): Promise<SessionRecord> {
    return this.inner.createSession(id, label);
  }

  ensureSession(id: string): Promise<void> {
    return this.inner.ensureSession(id);
  }

  deleteSession(id: string): Promise<boolean> {
    return this.inner.deleteSession(id);
  }

  updateSession(id: string, patch: SessionPatch): Promise<void> {
    return this.inner.updateSession(id, patch);
  }

  async readCreds(id: string): Promise<string | undefined> {
    const sealer = await this.sealer();
    const stored = await this.inner.readCreds(id);
    return sealer && stored !== undefined ? sealer.unseal(stored, id, CREDS_KEY) : stored;
  }

  async writeCreds(id: string, value: string, summary: CredsSummary, options?: WriteOptions): Promise<void> {
    const sealer = await this.sealer();
    await this.inner.writeCreds(id, sealer ? sealer.seal(value, id, CREDS_KEY) : value, summary, options);
  }

  async readValues(id: string, dataKeys: readonly string[]): Promise<Map<string, string>> {
    const sealer = await this.sealer();
    const found = await this.inner.readValues(id, dataKeys);
    if (!sealer) return found;
    return new Map([...found].map(([key, value]) => [key, sealer.unseal(value, id, key)]));
  }

  async writeValues(id: string, changes: readonly ValueChange[], options?: WriteOptions): Promise<void> {
    const sealer = await this.sealer();
    await this.inner.writeValues(
      id,
      sealer
        ? changes.map(([key, value]): ValueChange => [key, value === null ? null : sealer.seal(value, id, key)])
        : changes,
      options,
    );
  }

  /** Data keys are not sealed (they are the rows' primary key), so listing needs no secret. */
  listKeys(id: string): Promise<string[]> {
    return this.inner.listKeys(id);
  }

  clearKeys(id: string, options?: WriteOptions): Promise<void> {
    return this.inner.clearKeys(id, options);
  }

  async readAll(id: string): Promise<Array<[string, string]>> {
    const sealer = await this.sealer();
    const entries = await this.inner.readAll(id);
    return sealer ? entries.map(([key, value]) => [key, sealer.unseal(value, id, key)]) : entries;
  }

  async replaceAll(id: string, entries: readonly (readonly [string, string])[], summary: CredsSummary): Promise<void> {
    const sealer = await this.sealer();
    await this.inner.replaceAll(
      id,
      sealer ? entries.map(([key, value]) => [key, sealer.seal(value, id, key)] as const) : entries,
      summary,
    );
  }

  clearAuth(id: string): Promise<void> {
    return this.inner.clearAuth(id);
  }

  acquireLease(id: string, owner: Omit<Lease, 'expiresAt'>, ttlMs: number, takeover: Takeover): Promise<LeaseResult> {
    return this.inner.acquireLease(id, owner, ttlMs, takeover);
  }

  renewLease(id: string, ownerId: string, ttlMs: number): Promise<boolean> {
    return this.inner.renewLease(id, ownerId, ttlMs);
  }

  releaseLease(id: string, ownerId: string): Promise<void> {
    return this.inner.releaseLease(id, ownerId);
  }

  renewLeases(ownerId: string, ttlMs: number): Promise<string[]> {
    return this.inner.renewLeases(ownerId, ttlMs);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.inner.getMeta(key);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.inner.setMeta(key, value);
  }

  hasValues(): Promise<boolean> {
    return this.inner.hasValues();
  }

  insertMetaIfAbsent(key: string, value: string, options?: { unlessValues?: boolean }): Promise<MetaInsert> {
    if (key === ENCRYPTION_META_KEY) throw new Error('SealedStore.insertMetaIfAbsent cannot set the encryption meta');
    return this.inner.insertMetaIfAbsent(key, value, options);
  }

  /**
   * Rewrites values as plain text through `transform`, sealed under the current key. Changing the key is
   * `wa rekey`'s job, which works on the backend itself (`inner`): the encryption meta cannot be set here.
   */
  async rewriteAll(
    transform: (value: string, sessionId: string, dataKey: string) => string,
    meta: Readonly<Record<string, string | null>>,
  ): Promise<number> {
    if (ENCRYPTION_META_KEY in meta) throw new Error('SealedStore.rewriteAll cannot change the encryption meta');
    const sealer = await this.sealer();
    if (!sealer) return this.inner.rewriteAll(transform, meta);
    return this.inner.rewriteAll(
      (value, sessionId, dataKey) =>
        sealer.seal(transform(sealer.unseal(value, sessionId, dataKey), sessionId, dataKey), sessionId, dataKey),
      meta,
    );
  }

  /**
   * Message content (`text`, `raw`) is sealed like auth values, bound by the AAD to its session and its
   * message key (session + chat + from + id), so a sealed text moved to another message fails to open.
   * Ids, chats, senders, kinds and times stay in clear: they are the rows' keys and what readers filter on.
   */
  async storeIncoming(
    session: string,
    messages: readonly IncomingMessage[],
    options: { replay: boolean },
  ): Promise<number> {
    const sealer = await this.sealer();
    if (!sealer) return this.inner.storeIncoming(session, messages, options);
    return this.inner.storeIncoming(
      session,
      messages.map((m) => ({
        ...m,
        text: m.text === null ? null : sealer.seal(m.text, session, messageDataKey('text', m.chat, m.from, m.id)),
        raw: sealer.seal(m.raw, session, messageDataKey('raw', m.chat, m.from, m.id)),
      })),
      options,
    );
  }

  /** Events other than `message` carry no content: nothing to seal. */
  appendEvent(session: string, event: EventInput): Promise<boolean> {
    return this.inner.appendEvent(session, event);
  }

  async readEvents(options?: ReadEventsOptions): Promise<StoredEvent[]> {
    const sealer = await this.sealer();
    const events = await this.inner.readEvents(options);
    if (!sealer) return events;
    return events.map((e) =>
      e.type !== 'message'
        ? e
        : {
            ...e,
            text:
              e.text === null ? null : sealer.unseal(e.text, e.session, messageDataKey('text', e.chat, e.from, e.id)),
            raw: sealer.unseal(e.raw, e.session, messageDataKey('raw', e.chat, e.from, e.id)),
          },
    );
  }

  lastCursor(): Promise<string> {
    return this.inner.lastCursor();
  }

  pruneMessages(olderThanMs: number): Promise<PruneResult> {
    return this.inner.pruneMessages(olderThanMs);
  }

  /** An outgoing text is sealed like a received one, bound by the AAD to its session and message id. */
  private async openOutgoing(message: OutgoingMessage | undefined): Promise<OutgoingMessage | undefined> {
    const sealer = await this.sealer();
    if (!sealer || !message) return message;
    return { ...message, text: sealer.unseal(message.text, message.session, outboxDataKey(message.id)) };
  }

  async enqueueMessage(session: string, input: OutgoingInput): Promise<EnqueueResult> {
    const sealer = await this.sealer();
    const text = sealer ? sealer.seal(input.text, session, outboxDataKey(input.id)) : input.text;
    const result = await this.inner.enqueueMessage(session, { ...input, text });
    return { ...result, message: (await this.openOutgoing(result.message))! };
  }

  async claimNextMessage(session: string, options?: WriteOptions): Promise<OutgoingMessage | undefined> {
    return this.openOutgoing(await this.inner.claimNextMessage(session, options));
  }

  async markMessage(
    session: string,
    id: string,
    status: OutgoingStatus,
    code?: string | null,
  ): Promise<OutgoingMessage | undefined> {
    return this.openOutgoing(await this.inner.markMessage(session, id, status, code));
  }

  abandonInFlight(session: string, options?: WriteOptions): Promise<number> {
    return this.inner.abandonInFlight(session, options);
  }

  async cancelMessage(session: string, id: string): Promise<OutgoingMessage | undefined> {
    return this.openOutgoing(await this.inner.cancelMessage(session, id));
  }

  async getOutgoing(session: string, id: string): Promise<OutgoingMessage | undefined> {
    return this.openOutgoing(await this.inner.getOutgoing(session, id));
  }

  outboxCounts(): Promise<Map<string, OutboxCounts>> {
    return this.inner.outboxCounts();
  }

  outboxTotals(): Promise<Map<OutgoingStatus, number>> {
    return this.inner.outboxTotals();
  }

  sessionsWithEventsAfter(since: string): Promise<string[]> {
    return this.inner.sessionsWithEventsAfter(since);
  }

  /** Webhook positions hold cursors, counts and wa's own error words, no content: nothing to seal. */
  webhookPosition(session: string): Promise<WebhookPosition | undefined> {
    return this.inner.webhookPosition(session);
  }

  recordWebhookDelivery(
    session: string,
    cursor: string,
    outcome: WebhookOutcome,
    options: WriteOptions,
  ): Promise<WebhookPosition> {
    return this.inner.recordWebhookDelivery(session, cursor, outcome, options);
  }

  webhookStats(options?: WebhookStatsOptions): Promise<Map<string, WebhookStats>> {
    return this.inner.webhookStats(options);
  }

  permissionWarning(): string | undefined {
    return this.inner.permissionWarning();
  }

  compact(): Promise<boolean> {
    return this.inner.compact();
  }

  raw(): SessionStore {
    return this.inner.raw();
  }

  watchChanges(listener: ChangeListener): () => void {
    return this.inner.watchChanges(listener);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Settles encryption before a command takes leases or opens sockets; a no-op for an unwrapped store. */
export async function unlockValues(store: SessionStore): Promise<void> {
  if (store instanceof SealedStore) await store.unlock();
}
