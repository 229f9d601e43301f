import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { storageError, usageError, WaError } from '../errors.js';
import { SESSION_ID_PATTERN } from '../session-id.js';
import { CREDS_KEY } from './codec.js';
import { summarizeCreds } from './creds-summary.js';
import { toSessionRecord, type SessionRow } from './session-row.js';
import {
  canMoveStatus,
  countsBySession,
  FINAL_STATUSES,
  OUTBOX_COLUMNS,
  outboxDataKey,
  statusData,
  toOutgoing,
  type OutboxRow,
} from './outbox-rows.js';
import { eventData, directionOf, messageDataKey, toStoredEvent, type EventRow } from './message-rows.js';
import type {
  CredsSummary,
  EnqueueResult,
  EventInput,
  OutboxCounts,
  OutgoingInput,
  OutgoingMessage,
  OutgoingStatus,
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
import { ChangeListeners, type ChangeListener, type StoreChange } from './changes.js';
import { leaseLostError } from './fence.js';
import {
  emptyWebhookPosition,
  nextWebhookPosition,
  toWebhookPosition,
  toWebhookStats,
  WEBHOOK_COLUMNS,
  webhookValues,
  type WebhookRow,
  type WebhookStatsRow,
} from './webhook-rows.js';

/** The schema version this code writes; a database with a higher `user_version` is refused. */
export const SQLITE_SCHEMA_VERSION = 5;

export interface SqliteStoreOptions {
  /** Open without writing anything (no migration, no pragmas that write); for read-only commands. */
  readonly?: boolean;
}

// require(), not import: Node 20 loads a CommonJS package through ESM's translator (scanning its source
// for named exports), ~5 ms slower per start than require(); `wa status` must start fast (bench:cli).
const requireHere = createRequire(import.meta.url);
const Database = requireHere('better-sqlite3') as typeof BetterSqlite3;
type Db = BetterSqlite3.Database;

/** A registry row; `creds_valid` is json_valid() of the creds (selected for one session only). */
type SqliteSessionRow = SessionRow & { creds_valid: number | null };

const MIGRATIONS: ReadonlyArray<(db: Db) => void> = [
  // v1: the registry and leases beside the seed's `whatsapp_auth`, which is kept exactly as it was
  // (CREATE IF NOT EXISTS) so a database made by the seed is adopted in place.
  (db) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS whatsapp_auth (
        session_id TEXT NOT NULL,
        data_key   TEXT NOT NULL,
        data_value TEXT NOT NULL,
        updated_at TEXT,
        PRIMARY KEY (session_id, data_key)
      );
      -- Lets status and adoption find every session's creds without scanning all keys.
      CREATE INDEX IF NOT EXISTS whatsapp_auth_creds ON whatsapp_auth (session_id) WHERE data_key = 'creds';
      CREATE TABLE wa_sessions (
        id                     TEXT PRIMARY KEY,
        label                  TEXT,
        state                  TEXT NOT NULL DEFAULT 'unpaired',
        jid                    TEXT,
        name                   TEXT,
        created_at             TEXT NOT NULL,
        paired_at              TEXT,
        last_connected_at      TEXT,
        last_disconnect_code   INTEGER,
        last_disconnect_reason TEXT,
        last_disconnect_at     TEXT,
        connection             TEXT NOT NULL DEFAULT 'closed'
      );
      CREATE TABLE wa_leases (
        session_id TEXT PRIMARY KEY,
        owner_id   TEXT NOT NULL,
        host       TEXT NOT NULL,
        pid        INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `);
  },
  // v2: database-wide settings (encryption at rest keeps its salt and key id here).
  (db) => {
    db.exec(`CREATE TABLE wa_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`);
  },
  // v3: received messages and the append-only event log (layout: src/store/message-rows.ts).
  // AUTOINCREMENT: a cursor is never reused, not even after the newest events were pruned, so a reader
  // holding a cursor never skips an event written later.
  (db) => {
    db.exec(`
      CREATE TABLE wa_messages (
        session_id  TEXT NOT NULL,
        chat        TEXT NOT NULL,
        sender      TEXT NOT NULL,
        message_id  TEXT NOT NULL,
        direction   TEXT NOT NULL,
        from_me     INTEGER NOT NULL,
        push_name   TEXT,
        sent_at     TEXT,
        received_at TEXT NOT NULL,
        kind        TEXT NOT NULL,
        text        TEXT,
        raw         TEXT NOT NULL,
        PRIMARY KEY (session_id, chat, sender, message_id)
      );
      CREATE INDEX wa_messages_received ON wa_messages (received_at);
      CREATE TABLE wa_events (
        cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        at         TEXT NOT NULL,
        type       TEXT NOT NULL,
        chat       TEXT,
        sender     TEXT,
        message_id TEXT,
        replay     INTEGER,
        data       TEXT
      );
      CREATE INDEX wa_events_session ON wa_events (session_id, cursor);
      CREATE INDEX wa_events_at ON wa_events (at);
      CREATE INDEX wa_events_message ON wa_events (session_id, message_id) WHERE message_id IS NOT NULL;
    `);
  },
  // v4: the outbox (layout: src/store/outbox-rows.ts).
  (db) => {
    db.exec(`
      CREATE TABLE wa_outbox (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipient  TEXT NOT NULL,
        text       TEXT NOT NULL,
        idem_key   TEXT,
        status     TEXT NOT NULL,
        code       TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (session_id, message_id)
      );
      CREATE UNIQUE INDEX wa_outbox_key ON wa_outbox (session_id, idem_key) WHERE idem_key IS NOT NULL;
      CREATE INDEX wa_outbox_pending ON wa_outbox (session_id, seq) WHERE status IN ('queued', 'sending', 'unknown');
      CREATE INDEX wa_outbox_updated ON wa_outbox (updated_at);
    `);
  },
  // v5: webhook delivery positions, one row per session (layout: src/store/webhook-rows.ts).
  (db) => {
    db.exec(`
      CREATE TABLE wa_webhooks (
        session_id      TEXT PRIMARY KEY,
        cursor          INTEGER NOT NULL,
        failing_cursor  INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        first_failed_at INTEGER,
        next_at         INTEGER,
        last_error      TEXT,
        delivered       INTEGER NOT NULL DEFAULT 0,
        dead            INTEGER NOT NULL DEFAULT 0,
        updated_at      TEXT NOT NULL
      );
    `);
  },
];

const now = (): string => new Date().toISOString();

/**
 * better-sqlite3 is synchronous: while SQLite waits for another process's lock (busy_timeout), the whole
 * event loop waits with it — lease renewals, sockets, HTTP. So SQLite itself waits only BUSY_TIMEOUT_MS,
 * and a store operation that still finds the database locked is retried after a timer (the event loop
 * runs meanwhile), for BUSY_PATIENCE_MS in all before E_DB_BUSY. Opening (migrations) is synchronous and
 * keeps SQLite's own longer wait: it happens once, before the process does anything else.
 */
const BUSY_TIMEOUT_MS = 20;
const OPEN_BUSY_TIMEOUT_MS = 5000;
export const BUSY_PATIENCE_MS = 10_000;

const isBusy = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Maps SQLite's error codes to what a user can act on. */
function translate(error: unknown, location: string): Error {
  // Non-SQLite errors (bugs, closed connections) pass through unchanged and surface as unexpected.
  if (error instanceof WaError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_'))
    return error instanceof Error ? error : new Error(String(error));
  if (code === 'SQLITE_NOTADB')
    return storageError('E_DB_NOT_SQLITE', `${location} is not a SQLite database`, {
      hint: 'wa --db <path-to-a-new-or-wa-database> status',
      cause: error,
    });
  if (code === 'SQLITE_READONLY_DIRECTORY')
    return storageError(
      'E_DB_READONLY',
      `cannot open the database ${location}: it and its directory are read-only, and SQLite's WAL mode must create ${location}-shm beside it`,
      { hint: `make the directory of ${location} writable (or copy the database somewhere writable)`, cause: error },
    );
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM'))
    return storageError('E_DB_READONLY', `cannot write to the database ${location} (read-only file or directory)`, {
      hint: `check the permissions of ${location} and its directory`,
      cause: error,
    });
  if (code.startsWith('SQLITE_CORRUPT'))
    return storageError('E_DB_CORRUPT', `the database ${location} is corrupt`, { cause: error });
  if (code.startsWith('SQLITE_BUSY'))
    return storageError(
      'E_DB_BUSY',
      `the database ${location} stayed locked by another process for ${BUSY_PATIENCE_MS / 1000} s`,
      { cause: error },
    );
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR'))
    return storageError('E_DB_IO', `cannot write to the database ${location}: ${(error as Error).message}`, {
      cause: error,
    });
  return storageError('E_DB', `database error on ${location}: ${(error as Error).message}`, { cause: error });
}

let addonPath: string | undefined | null = null;

/**
 * better-sqlite3's compiled addon, located once. Handing its path over skips the `bindings` package's
 * search through a dozen candidate directories on every CLI start (a few ms of `wa status`).
 */
function nativeBinding(): string | undefined {
  if (addonPath === null) {
    try {
      addonPath = requireHere.resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      addonPath = undefined; // an unusual build layout: let better-sqlite3 search as it normally does
    }
  }
  return addonPath;
}

function openDatabase(path: string, readonly: boolean): Db {
  if (path !== ':memory:' && existsSync(path) && statSync(path).isDirectory()) {
    throw usageError('E_DB_PATH', `the database path ${path} is a directory`, { hint: `wa --db ${path}/wa.db …` });
  }
  if (path !== ':memory:' && !readonly && !existsSync(path)) {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch (error) {
      throw storageError(
        'E_DB_DIR',
        `cannot create the directory for the database ${path}: ${(error as Error).message}`,
        {
          hint: 'pass a writable location with --db or WA_DB',
          cause: error,
        },
      );
    }
    try {
      // Create the file ourselves so it is 0600 from the first byte (SQLite would use the umask).
      closeSync(openSync(path, 'a', 0o600));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw storageError(
        'E_DB_READONLY',
        `cannot write to the database ${path} (read-only file or directory: ${code})`,
        {
          hint: `check the permissions of ${path} and its directory`,
          cause: error,
        },
      );
    }
  }
  try {
    return new Database(path, { readonly, fileMustExist: readonly, nativeBinding: nativeBinding() });
  } catch (error) {
    throw translate(error, path);
  }
}

export class SqliteStore implements SessionStore {
  readonly backend = 'sqlite' as const;
  readonly location: string;
  readonly db: Db;
  private readonly ownsDb: boolean;
  private readonly readonly: boolean;
  private readonly stmts: Statements;
  /** Watchers of this store object's writes (SessionStore.watchChanges): other processes are seen by polling. */
  private readonly changes = new ChangeListeners();
  #skippedIds: readonly string[] = [];

  /**
   * Opens (creating and migrating as needed) a wa database. `target` is a file path, `:memory:`, or an
   * open better-sqlite3 Database, which the store then uses as is and does not close.
   */
  constructor(target: string | Db, options: SqliteStoreOptions = {}) {
    this.readonly = options.readonly ?? false;
    if (typeof target === 'string') {
      this.location = target === ':memory:' ? target : resolve(target);
      this.db = openDatabase(this.location, this.readonly);
      this.ownsDb = true;
    } else {
      this.location = target.name;
      this.db = target;
      this.ownsDb = false;
    }
    try {
      this.configure();
      this.migrate();
      this.stmts = prepare(this.db);
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    } catch (error) {
      if (this.ownsDb) this.db.close();
      throw translate(error, this.location);
    }
  }

  private configure(): void {
    if (this.readonly) {
      this.db.pragma('query_only = ON');
    } else {
      this.db.pragma('journal_mode = WAL');
    }
    // Readers (wa status) and writers (a daemon) in other processes wait for each other instead of failing:
    // SQLite waits this long while opening, and run() retries asynchronously afterwards (see BUSY_TIMEOUT_MS).
    this.db.pragma(`busy_timeout = ${OPEN_BUSY_TIMEOUT_MS}`);
    // FULL, not WAL's usual NORMAL: NORMAL may lose the last commits on power loss, and a lost ratchet or
    // pre-key write means undecryptable messages or a broken login. Auth writes are small and rare
    // enough (a handful per message) that one fsync per commit costs little; bench:store measures it.
    this.db.pragma('synchronous = FULL');
  }

  private migrate(): void {
    // Fast path without a lock: the version only ever grows, so an up-to-date schema stays up to date.
    const seen = this.db.pragma('user_version', { simple: true }) as number;
    if (seen === SQLITE_SCHEMA_VERSION) return;
    if (this.readonly || seen > SQLITE_SCHEMA_VERSION) {
      this.checkVersion(seen);
      return;
    }
    // Several processes may open a new file at the same instant: the version is read again under the
    // write lock (BEGIN IMMEDIATE), so exactly one migrates and the others find the schema done.
    this.db
      .transaction(() => {
        const version = this.db.pragma('user_version', { simple: true }) as number;
        this.checkVersion(version);
        for (let v = version; v < SQLITE_SCHEMA_VERSION; v++) MIGRATIONS[v]!(this.db);
        if (version !== SQLITE_SCHEMA_VERSION) this.db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
      })
      .immediate();
  }

  /** Refuses a schema this wa cannot use: newer than it knows, or older on a read-only connection. */
  private checkVersion(version: number): void {
    if (version > SQLITE_SCHEMA_VERSION) {
      throw storageError(
        'E_SCHEMA_NEWER',
        `the database ${this.location} was written by a newer wa (schema v${version}; this wa knows v${SQLITE_SCHEMA_VERSION})`,
        { hint: 'upgrade wa (npm install -g wa@latest)' },
      );
    }
    if (version < SQLITE_SCHEMA_VERSION && this.readonly) {
      throw storageError(
        'E_SCHEMA_OLD',
        `the database ${this.location} needs a schema upgrade (v${version} to v${SQLITE_SCHEMA_VERSION}), which needs write access`,
        { hint: `make ${this.location} writable and run any wa command once` },
      );
    }
  }

  /**
   * Runs one store operation. The first attempt runs synchronously, as before; while the database is locked
   * by another process (SQLITE_BUSY after SQLite's short wait), it is retried on a timer with backoff, so
   * the event loop keeps running, until BUSY_PATIENCE_MS have passed. Retrying is safe: a busy statement
   * or BEGIN IMMEDIATE applied nothing, and a failed transaction was rolled back whole.
   */
  /** Tells this store's watchers (watchChanges) about a committed change, when `did`; returns `value`. */
  private changed<T>(kind: StoreChange['kind'], session: string, did: boolean, value: T): T {
    if (did && this.changes.size > 0) this.changes.emit({ kind, session });
    return value;
  }

  watchChanges(listener: ChangeListener): () => void {
    return this.changes.add(listener);
  }

  private async run<T>(fn: () => T): Promise<T> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return fn();
      } catch (error) {
        if (!isBusy(error) || Date.now() - started >= BUSY_PATIENCE_MS) throw translate(error, this.location);
      }
      // 5 ms doubling to 100 ms, with jitter so waiting processes do not retry in lockstep.
      await sleep(Math.min(5 * 2 ** attempt, 100) * (0.5 + Math.random()));
    }
  }

  get skippedIds(): readonly string[] {
    return this.#skippedIds;
  }

  /** Sessions with creds in `whatsapp_auth` and no registry row whose ids are valid; the others are noted in skippedIds. */
  private orphans(): Array<{ session_id: string; data_value: string }> {
    const all = this.stmts.orphans.all() as Array<{ session_id: string; data_value: string }>;
    const valid = all.filter((row) => SESSION_ID_PATTERN.test(row.session_id));
    this.#skippedIds = all.filter((row) => !SESSION_ID_PATTERN.test(row.session_id)).map((row) => row.session_id);
    return valid;
  }

  /** Adopts sessions that have creds in `whatsapp_auth` but no registry row (a seed database, or foreign writers). */
  private adoptOrphans(): void {
    const orphans = this.orphans();
    if (orphans.length === 0 || this.readonly) return;
    const at = now();
    this.db
      .transaction(() => {
        for (const { session_id, data_value } of orphans) {
          const summary = summarizeCreds(data_value);
          this.stmts.insertSession.run(session_id, null, at);
          if (summary) this.applySummary(session_id, summary, at);
        }
      })
      .immediate();
  }

  private applySummary(id: string, summary: CredsSummary, at: string): void {
    this.stmts.applySummary.run({ id, paired: summary.paired ? 1 : 0, jid: summary.jid, name: summary.name, at });
  }

  listSessions(): Promise<SessionRecord[]> {
    return this.run(() => {
      this.adoptOrphans();
      // In read-only mode orphans cannot be registered, so they are listed as derived from their creds.
      const rows = (this.stmts.listSessions.all() as SqliteSessionRow[]).map(toRecord);
      if (this.readonly) {
        for (const { session_id, data_value } of this.orphans()) rows.push(orphanRecord(session_id, data_value));
        rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      }
      return rows;
    });
  }

  getSession(id: string): Promise<SessionRecord | undefined> {
    return this.run(() => {
      let row = this.stmts.getSession.get(id) as SqliteSessionRow | undefined;
      if (!row) {
        const creds = this.stmts.readCreds.get(id) as { data_value: string } | undefined;
        if (!creds) return undefined;
        if (!SESSION_ID_PATTERN.test(id)) {
          this.#skippedIds = [id];
          return undefined;
        }
        if (this.readonly) return orphanRecord(id, creds.data_value);
        this.adoptOrphans();
        row = this.stmts.getSession.get(id) as SqliteSessionRow | undefined;
      }
      return row && toRecord(row);
    });
  }

  createSession(id: string, label: string | null): Promise<SessionRecord> {
    return this.run(() => {
      this.adoptOrphans();
      const inserted = this.stmts.insertSession.run(id, label, now());
      if (inserted.changes === 0) {
        throw usageError('E_SESSION_EXISTS', `session '${id}' already exists`, { hint: `wa status ${id}` });
      }
      return toRecord(this.stmts.getSession.get(id) as SqliteSessionRow);
    });
  }

  ensureSession(id: string): Promise<void> {
    return this.run(() => {
      // Read first: the common case (already registered) then takes no write lock and no fsync.
      if (!this.stmts.sessionExists.get(id)) this.stmts.insertSession.run(id, null, now());
    });
  }

  deleteSession(id: string): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const auth = this.stmts.deleteAuth.run(id).changes;
          const registry = this.stmts.deleteSession.run(id).changes;
          this.stmts.deleteLease.run(id);
          const messages =
            this.stmts.deleteMessages.run(id).changes +
            this.stmts.deleteEvents.run(id).changes +
            this.db.prepare(`DELETE FROM wa_outbox WHERE session_id = ?`).run(id).changes;
          this.db.prepare(`DELETE FROM wa_webhooks WHERE session_id = ?`).run(id);
          return auth + registry + messages > 0;
        })
        .immediate(),
    );
  }

  updateSession(id: string, patch: SessionPatch): Promise<void> {
    return this.run(() => {
      const sets: string[] = [];
      const params: Record<string, unknown> = { id };
      const set = (column: string, name: string, value: unknown): void => {
        sets.push(`${column} = @${name}`);
        params[name] = value;
      };
      if (patch.state !== undefined) set('state', 'state', patch.state);
      if (patch.connection !== undefined) set('connection', 'connection', patch.connection);
      if (patch.lastConnectedAt !== undefined) set('last_connected_at', 'lastConnectedAt', patch.lastConnectedAt);
      if (patch.lastDisconnect !== undefined) {
        sets.push('last_disconnect_code = @code, last_disconnect_reason = @reason, last_disconnect_at = @at');
        params.code = patch.lastDisconnect?.code ?? null;
        params.reason = patch.lastDisconnect?.reason ?? null;
        params.at = patch.lastDisconnect?.at ?? null;
      }
      if (sets.length === 0) return;
      const update = this.db.prepare(`UPDATE wa_sessions SET ${sets.join(', ')} WHERE id = @id`);
      if (patch.state === undefined) {
        update.run(params);
        return;
      }
      this.db
        .transaction(() => {
          const before = stateOf(this.stmts, id);
          update.run(params);
          noteStateChange(this.stmts, id, before, now());
        })
        .immediate();
    });
  }

  readCreds(id: string): Promise<string | undefined> {
    return this.run(() => (this.stmts.readCreds.get(id) as { data_value: string } | undefined)?.data_value);
  }

  writeCreds(id: string, value: string, summary: CredsSummary, options: WriteOptions = {}): Promise<void> {
    return this.run(() => {
      this.stmts.writeCredsTx.immediate(id, value, summary, now(), options.fence);
    });
  }

  readValues(id: string, dataKeys: readonly string[]): Promise<Map<string, string>> {
    return this.run(() => {
      const found = new Map<string, string>();
      if (dataKeys.length === 0) return found;
      const rows = this.stmts.readValues.all(id, JSON.stringify(dataKeys)) as Array<[string, string]>;
      for (const [key, value] of rows) found.set(key, value);
      return found;
    });
  }

  writeValues(id: string, changes: readonly ValueChange[], options: WriteOptions = {}): Promise<void> {
    return this.run(() => {
      if (changes.length > 0) this.stmts.writeValuesTx.immediate(id, changes, now(), options.fence);
    });
  }

  listKeys(id: string): Promise<string[]> {
    return this.run(() => this.stmts.listKeys.all(id) as string[]);
  }

  clearKeys(id: string, options: WriteOptions = {}): Promise<void> {
    return this.run(() => {
      this.db
        .transaction(() => {
          checkFence(this.stmts, id, options.fence);
          this.stmts.deleteKeys.run(id);
        })
        .immediate();
    });
  }

  readAll(id: string): Promise<Array<[string, string]>> {
    return this.run(() => this.stmts.readAll.all(id) as Array<[string, string]>);
  }

  replaceAll(id: string, entries: readonly (readonly [string, string])[], summary: CredsSummary): Promise<void> {
    return this.run(() => {
      const at = now();
      this.db
        .transaction(() => {
          const before = stateOf(this.stmts, id);
          this.stmts.insertSession.run(id, null, at);
          this.stmts.deleteAuth.run(id);
          for (const [key, value] of entries) this.stmts.upsertValue.run(id, key, value, at);
          this.stmts.resetSession.run(id);
          this.applySummary(id, summary, at);
          noteStateChange(this.stmts, id, before, at);
        })
        .immediate();
    });
  }

  clearAuth(id: string): Promise<void> {
    return this.run(() => {
      this.db
        .transaction(() => {
          const before = stateOf(this.stmts, id);
          this.stmts.deleteAuth.run(id);
          this.stmts.resetSession.run(id);
          noteStateChange(this.stmts, id, before, now());
        })
        .immediate();
    });
  }

  acquireLease(id: string, owner: Omit<Lease, 'expiresAt'>, ttlMs: number, takeover: Takeover): Promise<LeaseResult> {
    return this.run(() =>
      this.db
        .transaction((): LeaseResult => {
          const at = Date.now();
          const held = this.stmts.getLease.get(id) as
            | { owner_id: string; host: string; pid: number; expires_at: number }
            | undefined;
          const mayTake = takeover === true || (typeof takeover === 'object' && takeover.from === held?.owner_id);
          if (held && held.owner_id !== owner.ownerId && held.expires_at > at && !mayTake) {
            return {
              acquired: false,
              holder: { ownerId: held.owner_id, host: held.host, pid: held.pid, expiresAt: held.expires_at },
            };
          }
          const lease: Lease = { ...owner, expiresAt: at + ttlMs };
          this.stmts.putLease.run(id, lease.ownerId, lease.host, lease.pid, lease.expiresAt);
          return { acquired: true, lease };
        })
        .immediate(),
    );
  }

  renewLease(id: string, ownerId: string, ttlMs: number): Promise<boolean> {
    return this.run(() => this.stmts.renewLease.run(Date.now() + ttlMs, id, ownerId).changes === 1);
  }

  renewLeases(ownerId: string, ttlMs: number): Promise<string[]> {
    return this.run(() =>
      this.stmts.renewLeases.all(Date.now() + ttlMs, ownerId).map((row) => (row as { session_id: string }).session_id),
    );
  }

  releaseLease(id: string, ownerId: string): Promise<void> {
    return this.run(() => {
      this.stmts.releaseLease.run(id, ownerId);
    });
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.run(() => (this.stmts.getMeta.get(key) as { value: string } | undefined)?.value);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.run(() => {
      this.stmts.setMeta.run(key, value);
    });
  }

  insertMetaIfAbsent(key: string, value: string, options: { unlessValues?: boolean } = {}): Promise<MetaInsert> {
    return this.run(() =>
      this.db
        .transaction((): MetaInsert => {
          const stored = (this.stmts.getMeta.get(key) as { value: string } | undefined)?.value;
          if (stored !== undefined) return { value: stored, inserted: false };
          if (options.unlessValues && this.stmts.anyValue.get() !== undefined)
            return { value: undefined, inserted: false };
          this.stmts.setMeta.run(key, value);
          return { value, inserted: true };
        })
        .immediate(),
    );
  }

  hasValues(): Promise<boolean> {
    return this.run(() => this.stmts.anyValue.get() !== undefined);
  }

  rewriteAll(
    transform: (value: string, sessionId: string, dataKey: string) => string,
    meta: Readonly<Record<string, string | null>>,
  ): Promise<number> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const update = this.db.prepare(
            `UPDATE whatsapp_auth SET data_value = ? WHERE session_id = ? AND data_key = ?`,
          );
          let count = 0;
          // Read everything first: rows are rewritten in place, and SQLite must not see a cursor over a table it is changing.
          const rows = this.db
            .prepare(`SELECT session_id, data_key, data_value FROM whatsapp_auth`)
            .raw()
            .all() as Array<[string, string, string]>;
          for (const [sessionId, dataKey, value] of rows) {
            update.run(transform(value, sessionId, dataKey), sessionId, dataKey);
            count++;
          }
          const messages = this.db
            .prepare(`SELECT session_id, chat, sender, message_id, text, raw FROM wa_messages`)
            .raw()
            .all() as Array<[string, string, string, string, string | null, string]>;
          const updateMessage = this.db.prepare(
            `UPDATE wa_messages SET text = ?, raw = ? WHERE session_id = ? AND chat = ? AND sender = ? AND message_id = ?`,
          );
          for (const [sessionId, chat, sender, messageId, text, raw] of messages) {
            const newText =
              text === null ? null : transform(text, sessionId, messageDataKey('text', chat, sender, messageId));
            const newRaw = transform(raw, sessionId, messageDataKey('raw', chat, sender, messageId));
            updateMessage.run(newText, newRaw, sessionId, chat, sender, messageId);
            count += text === null ? 1 : 2;
          }
          const outbox = this.db.prepare(`SELECT session_id, message_id, text FROM wa_outbox`).raw().all() as Array<
            [string, string, string]
          >;
          const updateOutbox = this.db.prepare(`UPDATE wa_outbox SET text = ? WHERE session_id = ? AND message_id = ?`);
          for (const [sessionId, messageId, text] of outbox) {
            updateOutbox.run(transform(text, sessionId, outboxDataKey(messageId)), sessionId, messageId);
            count++;
          }
          for (const [key, value] of Object.entries(meta)) {
            if (value === null) this.stmts.deleteMeta.run(key);
            else this.stmts.setMeta.run(key, value);
          }
          return count;
        })
        .immediate(),
    );
  }

  storeIncoming(session: string, messages: readonly IncomingMessage[], options: { replay: boolean }): Promise<number> {
    if (messages.length === 0) return Promise.resolve(0);
    return this.run(() => this.stmts.storeIncomingTx.immediate(session, messages, options.replay, now())).then(
      (stored) => this.changed('events', session, stored > 0, stored),
    );
  }

  appendEvent(session: string, event: EventInput): Promise<boolean> {
    return this.run(() =>
      this.db
        .transaction((): boolean => {
          if (event.type === 'undecryptable') {
            const seen =
              this.stmts.messageExists.get(session, event.chat, event.from, event.id) ??
              this.stmts.undecryptableExists.get(session, event.id, event.chat, event.from);
            if (seen !== undefined) return false;
            this.stmts.insertEvent.run(session, now(), 'undecryptable', event.chat, event.from, event.id, null, null);
            return true;
          }
          this.stmts.insertEvent.run(session, now(), event.type, null, null, null, null, eventData(event));
          return true;
        })
        .immediate(),
    ).then((appended) => this.changed('events', session, appended, appended));
  }

  readEvents(options: ReadEventsOptions = {}): Promise<StoredEvent[]> {
    return this.run(() => {
      const sessions = options.sessions && options.sessions.length > 0 ? JSON.stringify(options.sessions) : null;
      const rows = this.stmts.readEvents.all({
        since: BigInt(options.since ?? '0'),
        sessions,
        limit: options.limit ?? -1,
      }) as EventRow[];
      return rows.map(toStoredEvent).filter((e): e is StoredEvent => e !== undefined);
    });
  }

  lastCursor(): Promise<string> {
    return this.run(() => String(this.stmts.lastCursor.get() as number));
  }

  pruneMessages(olderThanMs: number): Promise<PruneResult> {
    return this.run(() =>
      this.db
        .transaction((): PruneResult => {
          const cutoff = new Date(Date.now() - olderThanMs).toISOString();
          const outbox = this.db
            .prepare(`DELETE FROM wa_outbox WHERE updated_at < ? AND status IN (SELECT value FROM json_each(?))`)
            .run(cutoff, JSON.stringify(FINAL_STATUSES)).changes;
          return {
            messages: this.stmts.pruneMessages.run(cutoff).changes + outbox,
            events: this.stmts.pruneEvents.run(cutoff).changes,
          };
        })
        .immediate(),
    );
  }

  private outgoing(session: string, id: string): OutgoingMessage | undefined {
    const row = this.db
      .prepare(`SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = ? AND message_id = ?`)
      .get(session, id) as OutboxRow | undefined;
    return row ? toOutgoing(row) : undefined;
  }

  /** Inside a write transaction: sets the status and appends its event, when the move is forward. */
  private move(message: OutgoingMessage, status: OutgoingStatus, code: string | null, at: string): boolean {
    if (!canMoveStatus(message.status, status)) return false;
    this.db
      .prepare(`UPDATE wa_outbox SET status = ?, code = ?, updated_at = ? WHERE session_id = ? AND message_id = ?`)
      .run(status, code, at, message.session, message.id);
    this.stmts.insertEvent.run(
      message.session,
      at,
      'status',
      message.to,
      null,
      message.id,
      null,
      statusData(status, code),
    );
    return true;
  }

  enqueueMessage(session: string, input: OutgoingInput): Promise<EnqueueResult> {
    return this.run(() =>
      this.db
        .transaction((): EnqueueResult => {
          const key = input.key ?? null;
          if (key !== null) {
            const existing = this.db
              .prepare(`SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = ? AND idem_key = ?`)
              .get(session, key) as OutboxRow | undefined;
            if (existing) return { message: toOutgoing(existing), created: false };
          }
          const at = now();
          this.db
            .prepare(
              `INSERT INTO wa_outbox (session_id, message_id, recipient, text, idem_key, status, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)`,
            )
            .run(session, input.id, input.to, input.text, key, at, at);
          this.stmts.insertEvent.run(session, at, 'status', input.to, null, input.id, null, statusData('queued', null));
          return { message: this.outgoing(session, input.id)!, created: true };
        })
        .immediate(),
    ).then((result) => {
      if (result.created) this.changed('outbox', session, true, undefined);
      return this.changed('events', session, result.created, result);
    });
  }

  claimNextMessage(session: string, options: WriteOptions = {}): Promise<OutgoingMessage | undefined> {
    return this.run(() => {
      // Senders poll this every OUTBOX_POLL_MS: an idle outbox costs one indexed read, never the write lock.
      const waiting = this.db
        .prepare(`SELECT 1 FROM wa_outbox WHERE session_id = ? AND status IN ('queued', 'unknown') LIMIT 1`)
        .get(session);
      if (waiting === undefined) return undefined;
      return this.db
        .transaction((): OutgoingMessage | undefined => {
          checkFence(this.stmts, session, options.fence);
          const rows = this.db
            .prepare(
              `SELECT ${OUTBOX_COLUMNS} FROM wa_outbox
               WHERE session_id = ? AND status IN ('queued', 'sending', 'unknown') ORDER BY seq LIMIT 2`,
            )
            .all(session) as OutboxRow[];
          // One in flight per session: while any message is `sending`, nothing else is claimed.
          if (rows.length === 0 || rows.some((r) => r.status === 'sending')) return undefined;
          const next = toOutgoing(rows[0]!);
          this.move(next, 'sending', null, now());
          return this.outgoing(session, next.id);
        })
        .immediate();
    }).then((message) => this.changed('events', session, message !== undefined, message));
  }

  markMessage(
    session: string,
    id: string,
    status: OutgoingStatus,
    code: string | null = null,
  ): Promise<OutgoingMessage | undefined> {
    return this.run(() =>
      this.db
        .transaction((): OutgoingMessage | undefined => {
          const message = this.outgoing(session, id);
          if (!message) return undefined;
          return this.move(message, status, code, now()) ? this.outgoing(session, id) : message;
        })
        .immediate(),
    ).then((message) => this.changed('events', session, message !== undefined, message));
  }

  abandonInFlight(session: string, options: WriteOptions = {}): Promise<number> {
    return this.run(() =>
      this.db
        .transaction((): number => {
          checkFence(this.stmts, session, options.fence);
          const rows = this.db
            .prepare(`SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = ? AND status = 'sending'`)
            .all(session) as OutboxRow[];
          const at = now();
          return rows.filter((row) => this.move(toOutgoing(row), 'unknown', null, at)).length;
        })
        .immediate(),
    ).then((moved) => this.changed('events', session, moved > 0, moved));
  }

  cancelMessage(session: string, id: string): Promise<OutgoingMessage | undefined> {
    return this.markMessage(session, id, 'cancelled');
  }

  getOutgoing(session: string, id: string): Promise<OutgoingMessage | undefined> {
    return this.run(() => this.outgoing(session, id));
  }

  outboxCounts(): Promise<Map<string, OutboxCounts>> {
    return this.run(() => {
      const rows = this.db
        .prepare(
          `SELECT session_id, status, count(*) AS n FROM wa_outbox
           WHERE status IN ('queued', 'unknown') GROUP BY session_id, status`,
        )
        .all() as Array<{ session_id: string; status: string; n: number }>;
      return countsBySession(rows);
    });
  }

  outboxTotals(): Promise<Map<OutgoingStatus, number>> {
    return this.run(() => {
      const rows = this.db.prepare(`SELECT status, count(*) AS n FROM wa_outbox GROUP BY status`).all() as Array<{
        status: OutgoingStatus;
        n: number;
      }>;
      return new Map(rows.map((r) => [r.status, Number(r.n)]));
    });
  }

  sessionsWithEventsAfter(since: string): Promise<string[]> {
    return this.run(
      () =>
        // A rowid range: as cheap as lastCursor when nothing is newer.
        this.db
          .prepare(`SELECT DISTINCT session_id FROM wa_events WHERE cursor > ?`)
          .pluck()
          .all(BigInt(since)) as string[],
    );
  }

  webhookPosition(session: string): Promise<WebhookPosition | undefined> {
    return this.run(() => {
      const row = this.db.prepare(`SELECT ${WEBHOOK_COLUMNS} FROM wa_webhooks WHERE session_id = ?`).get(session) as
        | WebhookRow
        | undefined;
      return row ? toWebhookPosition(row) : undefined;
    });
  }

  recordWebhookDelivery(
    session: string,
    cursor: string,
    outcome: WebhookOutcome,
    options: WriteOptions,
  ): Promise<WebhookPosition> {
    return this.run(() =>
      this.db
        .transaction((): WebhookPosition => {
          checkFence(this.stmts, session, options.fence);
          const row = this.db
            .prepare(`SELECT ${WEBHOOK_COLUMNS} FROM wa_webhooks WHERE session_id = ?`)
            .get(session) as WebhookRow | undefined;
          const current = row ? toWebhookPosition(row) : undefined;
          const at = now();
          const next = nextWebhookPosition(current, session, cursor, outcome, at);
          if (!next) return current ?? emptyWebhookPosition(session, at);
          this.db
            .prepare(`INSERT OR REPLACE INTO wa_webhooks (${WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
            .run(...webhookValues(next));
          return next;
        })
        .immediate(),
    );
  }

  webhookStats(options: WebhookStatsOptions = {}): Promise<Map<string, WebhookStats>> {
    return this.run(() => {
      const types = options.types ? JSON.stringify(options.types) : null;
      // One query for all sessions; each pending count is a range of the (session_id, cursor) index.
      const sessions = options.allSessions
        ? `(SELECT id FROM wa_sessions UNION SELECT session_id FROM wa_webhooks)`
        : `(SELECT session_id AS id FROM wa_webhooks)`;
      const rows = this.db
        .prepare(
          `SELECT s.id, w.session_id IS NOT NULL AS tracked, w.delivered, w.dead, w.attempts, w.next_at, w.last_error,
             (SELECT count(*) FROM wa_events e WHERE e.session_id = s.id AND e.cursor > coalesce(w.cursor, 0)
               AND (@types IS NULL OR e.type IN (SELECT value FROM json_each(@types)))) AS pending
           FROM ${sessions} s LEFT JOIN wa_webhooks w ON w.session_id = s.id
           ORDER BY s.id`,
        )
        .all({ types }) as WebhookStatsRow[];
      return toWebhookStats(rows);
    });
  }

  compact(): Promise<boolean> {
    return this.run(() => {
      if (this.readonly) return false;
      try {
        // Free pages hold old values: VACUUM rebuilds the file from live rows; the checkpoints before and
        // after move everything out of the WAL (which holds old pages too) and truncate it to nothing.
        this.db.pragma('wal_checkpoint(TRUNCATE)');
        this.db.exec('VACUUM');
        const [result] = this.db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
        return result?.busy === 0;
      } catch (error) {
        if (isBusy(error)) throw error; // run() retries while another process holds the lock
        return false;
      }
    });
  }

  raw(): SessionStore {
    return this;
  }

  permissionWarning(): string | undefined {
    if (this.location === ':memory:' || this.location === '') return undefined;
    const problems: string[] = [];
    const fixes: string[] = [];
    for (const [path, fix] of [
      [this.location, 600],
      [`${this.location}-wal`, 600],
      [`${this.location}-shm`, 600],
    ] as const) {
      let mode: number;
      try {
        mode = statSync(path).mode;
      } catch {
        continue; // no -wal/-shm (a closed or read-only database): nothing to expose
      }
      if ((mode & 0o044) !== 0) {
        problems.push(`${path} (mode ${(mode & 0o777).toString(8).padStart(4, '0')})`);
        fixes.push(`chmod ${fix} ${path}`);
      }
    }
    if (problems.length === 0) return undefined;
    return `the database is readable by other users: ${problems.join(', ')}; run ${fixes.join(' && ')}`;
  }

  close(): Promise<void> {
    if (this.ownsDb && this.db.open) this.db.close();
    return Promise.resolve();
  }
}

const toRecord = (row: SqliteSessionRow): SessionRecord => toSessionRecord(row, row.creds_valid !== 0);

function orphanRecord(id: string, creds: string): SessionRecord {
  const summary = summarizeCreds(creds);
  return {
    id,
    label: null,
    state: summary?.paired ? 'paired' : 'unpaired',
    jid: summary?.jid ?? null,
    name: summary?.name ?? null,
    createdAt: '',
    pairedAt: null,
    lastConnectedAt: null,
    lastDisconnect: null,
    connection: 'closed',
    lease: null,
    corruptKey: summary ? null : CREDS_KEY,
  };
}

/**
 * Statements are prepared on first use: a connection that only loads one session's creds (every library
 * open, every CLI start) should not pay for the twenty it never runs.
 */
function lazy<T extends Record<string, unknown>>(factories: { [K in keyof T]: () => T[K] }): T {
  const cache = {} as T;
  for (const key of Object.keys(factories) as Array<keyof T>) {
    Object.defineProperty(cache, key, {
      configurable: true,
      get: () => {
        const value = factories[key]();
        Object.defineProperty(cache, key, { value });
        return value;
      },
    });
  }
  return cache;
}

type Statement = BetterSqlite3.Statement;
type Transaction<A extends unknown[]> = BetterSqlite3.Transaction<(...args: A) => void>;

type Statements = {
  upsertValue: Statement;
  deleteValue: Statement;
  insertSession: Statement;
  applySummary: Statement;
  listSessions: Statement;
  getSession: Statement;
  sessionExists: Statement;
  orphans: Statement;
  deleteSession: Statement;
  deleteAuth: Statement;
  resetSession: Statement;
  readCreds: Statement;
  readValues: Statement;
  readAll: Statement;
  listKeys: Statement;
  deleteKeys: Statement;
  getLease: Statement;
  putLease: Statement;
  renewLease: Statement;
  releaseLease: Statement;
  renewLeases: Statement;
  getMeta: Statement;
  setMeta: Statement;
  deleteMeta: Statement;
  anyValue: Statement;
  deleteLease: Statement;
  holdsLease: Statement;
  deleteMessages: Statement;
  sessionState: Statement;
  deleteEvents: Statement;
  insertMessage: Statement;
  insertEvent: Statement;
  messageExists: Statement;
  undecryptableExists: Statement;
  readEvents: Statement;
  lastCursor: Statement;
  pruneMessages: Statement;
  pruneEvents: Statement;
  storeIncomingTx: BetterSqlite3.Transaction<
    (session: string, messages: readonly IncomingMessage[], replay: boolean, at: string) => number
  >;
  writeValuesTx: Transaction<[id: string, changes: readonly ValueChange[], at: string, fence: string | undefined]>;
  writeCredsTx: Transaction<[id: string, value: string, summary: CredsSummary, at: string, fence: string | undefined]>;
};

const stateOf = (s: Statements, id: string): string | undefined => s.sessionState.get(id) as string | undefined;

/**
 * Inside the transaction that may have changed a session's state: appends a `state` event when it did
 * (a registered session whose state differs from `before`), so the log tells every state change exactly
 * once and in commit order, whichever command or daemon made it.
 */
function noteStateChange(s: Statements, id: string, before: string | undefined, at: string): void {
  const after = stateOf(s, id);
  if (before === undefined || after === undefined || before === after) return;
  s.insertEvent.run(id, at, 'state', null, null, null, null, JSON.stringify({ state: after }));
}

/** Inside a write transaction (which holds the write lock, so no takeover can interleave): the fence holds. */
function checkFence(s: Statements, id: string, fence: string | undefined): void {
  if (fence !== undefined && s.holdsLease.get(id, fence) === undefined) throw leaseLostError(id, fence);
}

function prepare(db: Db): Statements {
  const s: Statements = lazy<Statements>({
    upsertValue: () =>
      db.prepare(
        `INSERT INTO whatsapp_auth (session_id, data_key, data_value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value, updated_at = excluded.updated_at`,
      ),
    deleteValue: () => db.prepare(`DELETE FROM whatsapp_auth WHERE session_id = ? AND data_key = ?`),
    insertSession: () =>
      db.prepare(`INSERT INTO wa_sessions (id, label, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`),
    // A creds write decides paired/unpaired; the stop states (logged_out, replaced) are kept until a
    // connect or logout resets them, so a creds.update during shutdown cannot erase the reason.
    applySummary: () =>
      db.prepare(
        `UPDATE wa_sessions SET
           jid = @jid, name = @name,
           state = CASE WHEN @paired = 0 THEN 'unpaired' WHEN state = 'unpaired' THEN 'paired' ELSE state END,
           paired_at = CASE WHEN @paired = 0 THEN NULL ELSE coalesce(paired_at, @at) END
         WHERE id = @id`,
      ),
    listSessions: () => db.prepare(`${sessionSelect(false)} ORDER BY s.id`),
    getSession: () => db.prepare(`${sessionSelect(true)} WHERE s.id = ?`),
    sessionExists: () => db.prepare(`SELECT 1 FROM wa_sessions WHERE id = ?`),
    orphans: () =>
      db.prepare(
        `SELECT session_id, data_value FROM whatsapp_auth
         WHERE data_key = 'creds' AND session_id NOT IN (SELECT id FROM wa_sessions)`,
      ),
    deleteSession: () => db.prepare(`DELETE FROM wa_sessions WHERE id = ?`),
    deleteAuth: () => db.prepare(`DELETE FROM whatsapp_auth WHERE session_id = ?`),
    resetSession: () =>
      db.prepare(`UPDATE wa_sessions SET state = 'unpaired', jid = NULL, name = NULL, paired_at = NULL WHERE id = ?`),
    readCreds: () => db.prepare(`SELECT data_value FROM whatsapp_auth WHERE session_id = ? AND data_key = 'creds'`),
    // One query for any number of ids: the id list travels as one JSON array parameter.
    readValues: () =>
      db
        .prepare(
          `SELECT data_key, data_value FROM whatsapp_auth
           WHERE session_id = ? AND data_key IN (SELECT value FROM json_each(?))`,
        )
        .raw(),
    readAll: () =>
      db.prepare(`SELECT data_key, data_value FROM whatsapp_auth WHERE session_id = ? ORDER BY data_key`).raw(),
    listKeys: () => db.prepare(`SELECT data_key FROM whatsapp_auth WHERE session_id = ? ORDER BY data_key`).pluck(),
    deleteKeys: () => db.prepare(`DELETE FROM whatsapp_auth WHERE session_id = ? AND data_key <> 'creds'`),
    getLease: () => db.prepare(`SELECT owner_id, host, pid, expires_at FROM wa_leases WHERE session_id = ?`),
    putLease: () =>
      db.prepare(
        `INSERT INTO wa_leases (session_id, owner_id, host, pid, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (session_id) DO UPDATE SET owner_id = excluded.owner_id, host = excluded.host,
           pid = excluded.pid, expires_at = excluded.expires_at`,
      ),
    renewLease: () => db.prepare(`UPDATE wa_leases SET expires_at = ? WHERE session_id = ? AND owner_id = ?`),
    releaseLease: () => db.prepare(`DELETE FROM wa_leases WHERE session_id = ? AND owner_id = ?`),
    getMeta: () => db.prepare(`SELECT value FROM wa_meta WHERE key = ?`),
    setMeta: () =>
      db.prepare(
        `INSERT INTO wa_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      ),
    deleteMeta: () => db.prepare(`DELETE FROM wa_meta WHERE key = ?`),
    // Message content is a value too: a database holding messages in clear is not a fresh one to seal.
    anyValue: () =>
      db.prepare(
        `SELECT 1 WHERE EXISTS (SELECT 1 FROM whatsapp_auth) OR EXISTS (SELECT 1 FROM wa_messages)
           OR EXISTS (SELECT 1 FROM wa_outbox)`,
      ),
    deleteMessages: () => db.prepare(`DELETE FROM wa_messages WHERE session_id = ?`),
    sessionState: () => db.prepare(`SELECT state FROM wa_sessions WHERE id = ?`).pluck(),
    deleteEvents: () => db.prepare(`DELETE FROM wa_events WHERE session_id = ?`),
    insertMessage: () =>
      db.prepare(
        `INSERT INTO wa_messages (session_id, chat, sender, message_id, direction, from_me, push_name, sent_at,
           received_at, kind, text, raw)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (session_id, chat, sender, message_id) DO NOTHING`,
      ),
    insertEvent: () =>
      db.prepare(
        `INSERT INTO wa_events (session_id, at, type, chat, sender, message_id, replay, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
    messageExists: () =>
      db.prepare(`SELECT 1 FROM wa_messages WHERE session_id = ? AND chat = ? AND sender = ? AND message_id = ?`),
    undecryptableExists: () =>
      db.prepare(
        `SELECT 1 FROM wa_events WHERE session_id = ? AND message_id = ? AND type = 'undecryptable'
           AND chat = ? AND sender = ?`,
      ),
    readEvents: () =>
      db.prepare(
        `SELECT e.cursor, e.session_id, e.at, e.type, e.chat, e.sender, e.message_id, e.replay, e.data,
           m.from_me, m.push_name, m.sent_at, m.kind, m.text, m.raw
         FROM wa_events e
         LEFT JOIN wa_messages m ON e.type = 'message' AND m.session_id = e.session_id AND m.chat = e.chat
           AND m.sender = e.sender AND m.message_id = e.message_id
         WHERE e.cursor > @since
           AND (@sessions IS NULL OR e.session_id IN (SELECT value FROM json_each(@sessions)))
         ORDER BY e.cursor
         LIMIT @limit`,
      ),
    // max() of the rowid alias is one b-tree lookup: cheap enough to poll.
    lastCursor: () => db.prepare(`SELECT coalesce(max(cursor), 0) FROM wa_events`).pluck(),
    pruneMessages: () => db.prepare(`DELETE FROM wa_messages WHERE received_at < ?`),
    pruneEvents: () => db.prepare(`DELETE FROM wa_events WHERE at < ?`),
    storeIncomingTx: () =>
      db.transaction((session: string, messages: readonly IncomingMessage[], replay: boolean, at: string) => {
        let stored = 0;
        for (const m of messages) {
          const inserted = s.insertMessage.run(
            session,
            m.chat,
            m.from,
            m.id,
            directionOf(m),
            m.fromMe ? 1 : 0,
            m.name,
            m.sentAt,
            at,
            m.kind,
            m.text,
            m.raw,
          );
          // A message seen before adds no event: exactly one `message` event per stored message.
          if (inserted.changes === 0) continue;
          s.insertEvent.run(session, at, 'message', m.chat, m.from, m.id, replay ? 1 : 0, null);
          stored++;
        }
        return stored;
      }),
    renewLeases: () => db.prepare(`UPDATE wa_leases SET expires_at = ? WHERE owner_id = ? RETURNING session_id`),
    deleteLease: () => db.prepare(`DELETE FROM wa_leases WHERE session_id = ?`),
    // The same expiry rule as every lease reader (sessionSelect): SQLite's clock, in epoch milliseconds.
    holdsLease: () =>
      db.prepare(
        `SELECT 1 FROM wa_leases WHERE session_id = ? AND owner_id = ?
           AND expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER)`,
      ),
    writeValuesTx: () =>
      db.transaction((id: string, changes: readonly ValueChange[], at: string, fence: string | undefined) => {
        checkFence(s, id, fence);
        for (const [key, value] of changes) {
          if (value === null) s.deleteValue.run(id, key);
          else s.upsertValue.run(id, key, value, at);
        }
      }),
    writeCredsTx: () =>
      db.transaction((id: string, value: string, summary: CredsSummary, at: string, fence: string | undefined) => {
        checkFence(s, id, fence);
        const before = stateOf(s, id);
        s.upsertValue.run(id, 'creds', value, at);
        s.insertSession.run(id, null, at);
        s.applySummary.run({ id, paired: summary.paired ? 1 : 0, jid: summary.jid, name: summary.name, at });
        noteStateChange(s, id, before, at);
      }),
  });
  return s;
}

// Lease columns are NULL once the lease has expired, so every reader sees the same "who owns it now".
// The list does not read creds at all: checking every session's creds (kilobytes each, in overflow pages)
// would make `wa status` slow on a big database. One session's creds are checked when it is shown alone.
const sessionSelect = (checkCreds: boolean): string => `
  SELECT s.*,
    l.owner_id AS owner_id, l.host AS owner_host, l.pid AS owner_pid, l.expires_at AS lease_expires_at,
    ${checkCreds ? 'json_valid(a.data_value)' : 'NULL'} AS creds_valid
  FROM wa_sessions s
  LEFT JOIN wa_leases l ON l.session_id = s.id AND l.expires_at > CAST(unixepoch('subsec') * 1000 AS INTEGER)
  ${checkCreds ? "LEFT JOIN whatsapp_auth a ON a.session_id = s.id AND a.data_key = 'creds'" : ''}`;
