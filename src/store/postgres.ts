/**
 * The PostgreSQL backend: the same schema and contract as SQLite, for daemons on several hosts sharing one
 * database. Tables live in the connection's default schema. Leases are timed by the database's clock, so
 * hosts with skewed clocks still agree on who owns a session.
 */
import pg from 'pg';
import { storageError, usageError, WaError } from '../errors.js';
import { SESSION_ID_PATTERN } from '../session-id.js';
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
import { redactDbUrl } from '../db-url.js';
import { toSessionRecord, type SessionRow } from './session-row.js';
import type { ChangeListener } from './changes.js';
import { EVENTS_CHANNEL, NOTIFY_SQL, OUTBOX_CHANNEL, PgNotifications } from './pg-notifications.js';

/** The schema version this code writes; kept in wa_meta under 'schema_version'. */
export const POSTGRES_SCHEMA_VERSION = 5;

const MIGRATIONS: readonly string[] = [
  // v1: registry and leases beside the seed's whatsapp_auth (kept as it is when it exists).
  `CREATE TABLE IF NOT EXISTS whatsapp_auth (
     session_id TEXT NOT NULL,
     data_key   TEXT NOT NULL,
     data_value TEXT NOT NULL,
     updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
     PRIMARY KEY (session_id, data_key)
   );
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
     expires_at BIGINT NOT NULL
   );`,
  // v2: nothing to add here (wa_meta, which SQLite gained in v2, exists from the start on PostgreSQL);
  // kept so both backends count versions alike.
  `SELECT 1`,
  // v3: received messages and the append-only event log (layout: src/store/message-rows.ts). An identity
  // column never hands out a cursor twice, not even after pruning.
  `CREATE TABLE wa_messages (
     session_id  TEXT NOT NULL,
     chat        TEXT NOT NULL,
     sender      TEXT NOT NULL,
     message_id  TEXT NOT NULL,
     direction   TEXT NOT NULL,
     from_me     BOOLEAN NOT NULL,
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
     cursor     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     session_id TEXT NOT NULL,
     at         TEXT NOT NULL,
     type       TEXT NOT NULL,
     chat       TEXT,
     sender     TEXT,
     message_id TEXT,
     replay     BOOLEAN,
     data       TEXT
   );
   CREATE INDEX wa_events_session ON wa_events (session_id, cursor);
   CREATE INDEX wa_events_at ON wa_events (at);
   CREATE INDEX wa_events_message ON wa_events (session_id, message_id) WHERE message_id IS NOT NULL;`,
  // v4: the outbox (layout: src/store/outbox-rows.ts).
  `CREATE TABLE wa_outbox (
     seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
   CREATE INDEX wa_outbox_updated ON wa_outbox (updated_at);`,
  // v5: webhook delivery positions, one row per session (layout: src/store/webhook-rows.ts).
  `CREATE TABLE wa_webhooks (
     session_id      TEXT PRIMARY KEY,
     cursor          BIGINT NOT NULL,
     failing_cursor  BIGINT,
     attempts        INTEGER NOT NULL DEFAULT 0,
     first_failed_at BIGINT,
     next_at         BIGINT,
     last_error      TEXT,
     delivered       BIGINT NOT NULL DEFAULT 0,
     dead            BIGINT NOT NULL DEFAULT 0,
     updated_at      TEXT NOT NULL
   );`,
];

/**
 * Taken (transaction-scoped) by every transaction that appends events. An identity value is drawn when a
 * row is inserted, not when it commits: two concurrent appenders could commit cursors 11 then 10, and a
 * reader that saw 11 first would ask for "after 11" and never see 10. Serialized appends commit in cursor
 * order, as SQLite's single writer does anyway. Readers take no lock.
 */
const EVENT_APPEND_LOCK = 2057240212;

/** Whether any auth value or message is stored (message content is a value too, for sealing). */
const ANY_VALUE = `SELECT 1 WHERE EXISTS (SELECT 1 FROM whatsapp_auth) OR EXISTS (SELECT 1 FROM wa_messages)
  OR EXISTS (SELECT 1 FROM wa_outbox)`;

/** The database's clock in epoch milliseconds, used for every lease decision. */
const DB_NOW = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

/** A registry row; `creds_text` is selected for one session only, to check it is valid JSON. */
type PostgresSessionRow = SessionRow & { creds_text?: string | null };

const sessionSelect = (checkCreds: boolean): string => `
  SELECT s.*, l.owner_id, l.host AS owner_host, l.pid AS owner_pid, l.expires_at AS lease_expires_at,
    ${checkCreds ? 'a.data_value' : 'NULL'} AS creds_text
  FROM wa_sessions s
  LEFT JOIN wa_leases l ON l.session_id = s.id AND l.expires_at > ${DB_NOW}
  ${checkCreds ? "LEFT JOIN whatsapp_auth a ON a.session_id = s.id AND a.data_key = 'creds'" : ''}`;

/** A URL fit to print: no password (user-info or query parameter) is ever shown. */
export const redactUrl = redactDbUrl;

/** Turns pg's and the network's errors into what a user can act on. */
function translate(error: unknown, location: string): Error {
  if (error instanceof WaError) return error;
  const e = error as { code?: string; message?: string };
  const message = e.message ?? String(error);
  switch (e.code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case '57P01': // admin_shutdown: the server is restarting
    case '57P03': // cannot_connect_now: starting up
      return storageError('E_DB_UNREACHABLE', `cannot reach PostgreSQL at ${location}: ${message}`, {
        hint: 'check that the server is running and the host and port in the URL',
        cause: error,
      });
    case '28P01':
      return storageError('E_DB_AUTH', `PostgreSQL rejected the password for ${location}`, {
        hint: 'check the user and password in the URL (--db, WA_DB or DATABASE_URL)',
        cause: error,
      });
    case '28000':
      return storageError('E_DB_AUTH', `PostgreSQL refused the connection to ${location}: ${message}`, {
        cause: error,
      });
    case '3D000':
      return storageError('E_DB_MISSING', `the PostgreSQL database in ${location} does not exist`, {
        hint: 'create it first (createdb, or CREATE DATABASE)',
        cause: error,
      });
    case '42501':
      return storageError('E_DB_PERMISSION', `PostgreSQL denied access on ${location}: ${message}`, { cause: error });
  }
  // node-postgres parses the URL only on its first connect; resolveConfig checks the URLs it is given, and
  // this catches what reaches the library (startSessions, usePostgresAuthState) unchecked.
  if ((e.code === 'ERR_INVALID_URL' || error instanceof URIError) && !(error instanceof WaError)) {
    return usageError('E_DB_URL', `invalid PostgreSQL URL ${location}: ${message}`); // no cause: it holds the raw URL
  }
  // A certificate or key file named in the URL (sslcert, sslkey, sslrootcert) that cannot be read; its path
  // is not repeated, as the URL shows it redacted.
  if ((e.code === 'ENOENT' || e.code === 'EACCES') && (error as { syscall?: string }).syscall === 'open') {
    return usageError('E_DB_URL', `cannot read a file named in the PostgreSQL URL ${location} (${e.code})`, {
      hint: 'check the sslcert, sslkey and sslrootcert paths in the URL',
    });
  }
  if (/timeout|terminated|Connection terminated|ECONNRESET/i.test(message)) {
    return storageError('E_DB_UNREACHABLE', `lost the connection to PostgreSQL at ${location}: ${message}`, {
      cause: error,
    });
  }
  return error instanceof Error ? error : new Error(message);
}

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10): enough for many sessions, whose writes are short. */
  max?: number;
}

export class PostgresStore implements SessionStore {
  readonly backend = 'postgres' as const;
  readonly location: string;
  readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly notifications: PgNotifications;
  #skippedIds: readonly string[] = [];

  private constructor(pool: pg.Pool, location: string, ownsPool: boolean) {
    this.pool = pool;
    this.location = location;
    this.ownsPool = ownsPool;
    this.notifications = new PgNotifications(pool.options);
  }

  /** Connects (a pool), creates or migrates the schema, and returns the store. `target` is a URL or a pg.Pool. */
  static async open(target: string | pg.Pool, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    let pool: pg.Pool;
    let location: string;
    if (typeof target === 'string') {
      location = redactUrl(target);
      try {
        pool = new pg.Pool({
          connectionString: target,
          max: options.max ?? 10,
          connectionTimeoutMillis: 10_000,
          // A query that never answers (a server hanging mid-restart) must fail, not block a lease renewal forever.
          query_timeout: 30_000,
          idleTimeoutMillis: 30_000,
        });
      } catch (error) {
        throw usageError('E_DB_URL', `invalid PostgreSQL URL ${location}: ${(error as Error).message}`);
      }
    } else {
      pool = target;
      location = 'postgres (pool)';
    }
    // An idle client whose server went away (a restart) emits 'error'; unhandled, that would kill the
    // process. The pool drops it and the next query connects afresh.
    pool.on('error', () => undefined);
    const store = new PostgresStore(pool, location, typeof target === 'string');
    try {
      await store.migrate();
    } catch (error) {
      if (store.ownsPool) await pool.end().catch(() => undefined);
      throw translate(error, location);
    }
    return store;
  }

  private async migrate(): Promise<void> {
    // The common case, an up-to-date schema, costs one plain read and no lock.
    const current = await this.pool
      .query<{ value: string }>(`SELECT value FROM wa_meta WHERE key = 'schema_version'`)
      .then((result) => Number(result.rows[0]?.value ?? 0))
      .catch((error: { code?: string }) => {
        if (error.code === '42P01') return 0; // no wa_meta yet: a new database, or one the seed made
        throw error;
      });
    if (current === POSTGRES_SCHEMA_VERSION) return;
    await this.tx(async (client) => {
      // Several daemons may start at once: one migrates, the others wait here and then find it done.
      await client.query(`SELECT pg_advisory_xact_lock(2057240211)`);
      await client.query(`CREATE TABLE IF NOT EXISTS wa_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      const row = await client.query<{ value: string }>(`SELECT value FROM wa_meta WHERE key = 'schema_version'`);
      const version = Number(row.rows[0]?.value ?? 0);
      if (version > POSTGRES_SCHEMA_VERSION) {
        throw storageError(
          'E_SCHEMA_NEWER',
          `the database ${this.location} was written by a newer wa (schema v${version}; this wa knows v${POSTGRES_SCHEMA_VERSION})`,
          { hint: 'upgrade wa (npm install -g wa@latest)' },
        );
      }
      for (let v = version; v < POSTGRES_SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
      if (version !== POSTGRES_SCHEMA_VERSION) {
        await client.query(
          `INSERT INTO wa_meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
          [String(POSTGRES_SCHEMA_VERSION)],
        );
      }
    });
  }

  private async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw translate(error, this.location);
    }
  }

  /** Runs `work` in one transaction on one pooled connection; rolls back and rethrows on any failure. */
  private async tx<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw translate(error, this.location);
    }
    let broken = false;
    // A checked-out client whose server goes away between two queries emits 'error' with no listener of
    // the pool's, and an unheard 'error' event kills the process (node-postgres' documented footgun). The
    // failure then surfaces through the next query of this transaction instead.
    const onError = (): void => void (broken = true);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw translate(error, this.location);
    } finally {
      client.off('error', onError);
      // A connection that could not even roll back is discarded rather than returned to the pool.
      client.release(broken);
    }
  }

  get skippedIds(): readonly string[] {
    return this.#skippedIds;
  }

  /** Adopts sessions that have creds in `whatsapp_auth` but no registry row; invalid ids go to skippedIds. */
  private async adoptOrphans(): Promise<void> {
    const found = await this.query<{ session_id: string; data_value: string }>(
      `SELECT session_id, data_value FROM whatsapp_auth
       WHERE data_key = 'creds' AND NOT EXISTS (SELECT 1 FROM wa_sessions s WHERE s.id = session_id)`,
    );
    this.#skippedIds = found.rows
      .filter((row) => !SESSION_ID_PATTERN.test(row.session_id))
      .map((row) => row.session_id);
    const orphans = { rows: found.rows.filter((row) => SESSION_ID_PATTERN.test(row.session_id)) };
    if (orphans.rows.length === 0) return;
    const { summarizeCreds } = await import('./creds-summary.js');
    const at = new Date().toISOString();
    await this.tx(async (client) => {
      for (const { session_id, data_value } of orphans.rows) {
        await client.query(`INSERT INTO wa_sessions (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [
          session_id,
          at,
        ]);
        const summary = summarizeCreds(data_value);
        if (summary) await applySummary(client, session_id, summary, at);
      }
    });
  }

  async listSessions(): Promise<SessionRecord[]> {
    await this.adoptOrphans();
    const result = await this.query<PostgresSessionRow>(`${sessionSelect(false)} ORDER BY s.id COLLATE "C"`);
    return result.rows.map(toRecord);
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    let row = (await this.query<PostgresSessionRow>(`${sessionSelect(true)} WHERE s.id = $1`, [id])).rows[0];
    if (!row) {
      await this.adoptOrphans();
      row = (await this.query<PostgresSessionRow>(`${sessionSelect(true)} WHERE s.id = $1`, [id])).rows[0];
    }
    return row && toRecord(row);
  }

  async createSession(id: string, label: string | null): Promise<SessionRecord> {
    await this.adoptOrphans();
    const inserted = await this.query(
      `INSERT INTO wa_sessions (id, label, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
      [id, label, new Date().toISOString()],
    );
    if (inserted.rowCount === 0) {
      throw usageError('E_SESSION_EXISTS', `session '${id}' already exists`, { hint: `wa status ${id}` });
    }
    return (await this.getSession(id))!;
  }

  async ensureSession(id: string): Promise<void> {
    await this.query(`INSERT INTO wa_sessions (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [
      id,
      new Date().toISOString(),
    ]);
  }

  deleteSession(id: string): Promise<boolean> {
    return this.tx(async (client) => {
      const auth = await client.query(`DELETE FROM whatsapp_auth WHERE session_id = $1`, [id]);
      const registry = await client.query(`DELETE FROM wa_sessions WHERE id = $1`, [id]);
      await client.query(`DELETE FROM wa_leases WHERE session_id = $1`, [id]);
      const messages = await client.query(`DELETE FROM wa_messages WHERE session_id = $1`, [id]);
      const events = await client.query(`DELETE FROM wa_events WHERE session_id = $1`, [id]);
      const outbox = await client.query(`DELETE FROM wa_outbox WHERE session_id = $1`, [id]);
      await client.query(`DELETE FROM wa_webhooks WHERE session_id = $1`, [id]);
      const counts = [auth, registry, messages, events, outbox].map((r) => r.rowCount ?? 0);
      return counts.some((n) => n > 0);
    });
  }

  async updateSession(id: string, patch: SessionPatch): Promise<void> {
    const sets: string[] = [];
    const values: unknown[] = [id];
    const set = (column: string, value: unknown): void => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (patch.state !== undefined) set('state', patch.state);
    if (patch.connection !== undefined) set('connection', patch.connection);
    if (patch.lastConnectedAt !== undefined) set('last_connected_at', patch.lastConnectedAt);
    if (patch.lastDisconnect !== undefined) {
      set('last_disconnect_code', patch.lastDisconnect?.code ?? null);
      set('last_disconnect_reason', patch.lastDisconnect?.reason ?? null);
      set('last_disconnect_at', patch.lastDisconnect?.at ?? null);
    }
    if (sets.length === 0) return;
    const update = `UPDATE wa_sessions SET ${sets.join(', ')} WHERE id = $1`;
    if (patch.state === undefined) {
      await this.query(update, values);
      return;
    }
    await this.tx(async (client) => {
      const before = await lockState(client, id);
      await client.query(update, values);
      await noteStateChange(client, id, before);
    });
  }

  async readCreds(id: string): Promise<string | undefined> {
    const result = await this.query<{ data_value: string }>(
      `SELECT data_value FROM whatsapp_auth WHERE session_id = $1 AND data_key = 'creds'`,
      [id],
    );
    return result.rows[0]?.data_value;
  }

  writeCreds(id: string, value: string, summary: CredsSummary, options: WriteOptions = {}): Promise<void> {
    return this.tx(async (client) => {
      await lockForWrite(client, id, options.fence);
      const before = await lockState(client, id);
      const at = new Date().toISOString();
      await client.query(
        `INSERT INTO whatsapp_auth (session_id, data_key, data_value, updated_at) VALUES ($1, 'creds', $2, now())
         ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value, updated_at = excluded.updated_at`,
        [id, value],
      );
      await client.query(`INSERT INTO wa_sessions (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [
        id,
        at,
      ]);
      await applySummary(client, id, summary, at);
      await noteStateChange(client, id, before);
    });
  }

  async readValues(id: string, dataKeys: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    if (dataKeys.length === 0) return found;
    const result = await this.query<{ data_key: string; data_value: string }>(
      `SELECT data_key, data_value FROM whatsapp_auth WHERE session_id = $1 AND data_key = ANY($2::text[])`,
      [id, dataKeys],
    );
    for (const row of result.rows) found.set(row.data_key, row.data_value);
    return found;
  }

  async writeValues(id: string, changes: readonly ValueChange[], options: WriteOptions = {}): Promise<void> {
    if (changes.length === 0) return;
    // The last change to a key wins, as in a sequential apply; one statement may not touch a row twice.
    const final = new Map<string, string | null>();
    for (const [key, value] of changes) final.set(key, value);
    const upsertKeys: string[] = [];
    const upsertValues: string[] = [];
    const deleteKeys: string[] = [];
    for (const [key, value] of final) {
      if (value === null) {
        deleteKeys.push(key);
      } else {
        upsertKeys.push(key);
        upsertValues.push(value);
      }
    }
    await this.tx(async (client) => {
      if (options.fence !== undefined) await lockForWrite(client, id, options.fence);
      if (deleteKeys.length > 0) {
        await client.query(`DELETE FROM whatsapp_auth WHERE session_id = $1 AND data_key = ANY($2::text[])`, [
          id,
          deleteKeys,
        ]);
      }
      if (upsertKeys.length > 0) {
        await client.query(
          `INSERT INTO whatsapp_auth (session_id, data_key, data_value, updated_at)
           SELECT $1, k, v, now() FROM unnest($2::text[], $3::text[]) AS t(k, v)
           ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value, updated_at = excluded.updated_at`,
          [id, upsertKeys, upsertValues],
        );
      }
    });
  }

  async listKeys(id: string): Promise<string[]> {
    const result = await this.query<{ data_key: string }>(
      `SELECT data_key FROM whatsapp_auth WHERE session_id = $1 ORDER BY data_key COLLATE "C"`,
      [id],
    );
    return result.rows.map((row) => row.data_key);
  }

  clearKeys(id: string, options: WriteOptions = {}): Promise<void> {
    return this.tx(async (client) => {
      if (options.fence !== undefined) await lockForWrite(client, id, options.fence);
      await client.query(`DELETE FROM whatsapp_auth WHERE session_id = $1 AND data_key <> 'creds'`, [id]);
    });
  }

  async readAll(id: string): Promise<Array<[string, string]>> {
    const result = await this.query<{ data_key: string; data_value: string }>(
      `SELECT data_key, data_value FROM whatsapp_auth WHERE session_id = $1 ORDER BY data_key COLLATE "C"`,
      [id],
    );
    return result.rows.map((row) => [row.data_key, row.data_value]);
  }

  replaceAll(id: string, entries: readonly (readonly [string, string])[], summary: CredsSummary): Promise<void> {
    return this.tx(async (client) => {
      const at = new Date().toISOString();
      const before = await lockState(client, id);
      await client.query(`INSERT INTO wa_sessions (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [
        id,
        at,
      ]);
      await client.query(`DELETE FROM whatsapp_auth WHERE session_id = $1`, [id]);
      if (entries.length > 0) {
        await client.query(
          `INSERT INTO whatsapp_auth (session_id, data_key, data_value, updated_at)
           SELECT $1, k, v, now() FROM unnest($2::text[], $3::text[]) AS t(k, v)`,
          [id, entries.map(([k]) => k), entries.map(([, v]) => v)],
        );
      }
      await client.query(
        `UPDATE wa_sessions SET state = 'unpaired', jid = NULL, name = NULL, paired_at = NULL WHERE id = $1`,
        [id],
      );
      await applySummary(client, id, summary, at);
      await noteStateChange(client, id, before);
    });
  }

  clearAuth(id: string): Promise<void> {
    return this.tx(async (client) => {
      const before = await lockState(client, id);
      await client.query(`DELETE FROM whatsapp_auth WHERE session_id = $1`, [id]);
      await client.query(
        `UPDATE wa_sessions SET state = 'unpaired', jid = NULL, name = NULL, paired_at = NULL WHERE id = $1`,
        [id],
      );
      await noteStateChange(client, id, before);
    });
  }

  acquireLease(id: string, owner: Omit<Lease, 'expiresAt'>, ttlMs: number, takeover: Takeover): Promise<LeaseResult> {
    return this.tx(async (client): Promise<LeaseResult> => {
      // Row lock (or the insert's unique check) serializes two hosts racing for the same session.
      await client.query(
        `INSERT INTO wa_leases (session_id, owner_id, host, pid, expires_at) VALUES ($1, '', '', 0, 0) ON CONFLICT DO NOTHING`,
        [id],
      );
      const held = (
        await client.query<{ owner_id: string; host: string; pid: number; expires_at: string; live: boolean }>(
          `SELECT owner_id, host, pid, expires_at, expires_at > ${DB_NOW} AS live FROM wa_leases WHERE session_id = $1 FOR UPDATE`,
          [id],
        )
      ).rows[0]!;
      const mayTake = takeover === true || (typeof takeover === 'object' && takeover.from === held.owner_id);
      if (held.live && held.owner_id !== owner.ownerId && !mayTake) {
        return {
          acquired: false,
          holder: { ownerId: held.owner_id, host: held.host, pid: held.pid, expiresAt: Number(held.expires_at) },
        };
      }
      const updated = await client.query<{ expires_at: string }>(
        `UPDATE wa_leases SET owner_id = $2, host = $3, pid = $4, expires_at = ${DB_NOW} + $5 WHERE session_id = $1 RETURNING expires_at`,
        [id, owner.ownerId, owner.host, owner.pid, ttlMs],
      );
      return { acquired: true, lease: { ...owner, expiresAt: Number(updated.rows[0]!.expires_at) } };
    });
  }

  async renewLease(id: string, ownerId: string, ttlMs: number): Promise<boolean> {
    const result = await this.query(
      `UPDATE wa_leases SET expires_at = ${DB_NOW} + $3 WHERE session_id = $1 AND owner_id = $2`,
      [id, ownerId, ttlMs],
    );
    return result.rowCount === 1;
  }

  async renewLeases(ownerId: string, ttlMs: number): Promise<string[]> {
    const result = await this.query<{ session_id: string }>(
      `UPDATE wa_leases SET expires_at = ${DB_NOW} + $2 WHERE owner_id = $1 RETURNING session_id`,
      [ownerId, ttlMs],
    );
    return result.rows.map((row) => row.session_id);
  }

  async releaseLease(id: string, ownerId: string): Promise<void> {
    await this.query(`DELETE FROM wa_leases WHERE session_id = $1 AND owner_id = $2`, [id, ownerId]);
  }

  async getMeta(key: string): Promise<string | undefined> {
    return (await this.query<{ value: string }>(`SELECT value FROM wa_meta WHERE key = $1`, [key])).rows[0]?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.query(
      `INSERT INTO wa_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [key, value],
    );
  }

  insertMetaIfAbsent(key: string, value: string, options: { unlessValues?: boolean } = {}): Promise<MetaInsert> {
    return this.tx(async (client): Promise<MetaInsert> => {
      if (options.unlessValues) {
        // SHARE mode waits for transactions writing values and holds off new ones until this commits, so
        // "no values yet" stays true until the meta entry is in; two initializers do not block each other.
        await client.query(`LOCK TABLE whatsapp_auth, wa_messages IN SHARE MODE`);
      }
      const stored = await client.query<{ value: string }>(`SELECT value FROM wa_meta WHERE key = $1`, [key]);
      if (stored.rows[0]) return { value: stored.rows[0].value, inserted: false };
      if (options.unlessValues && (await client.query(ANY_VALUE)).rows.length > 0) {
        return { value: undefined, inserted: false };
      }
      // A concurrent initializer may insert between the read and here: its row wins (DO NOTHING waits for
      // its commit), and the value it stored is read back and returned.
      const inserted = await client.query(
        `INSERT INTO wa_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
        [key, value],
      );
      if (inserted.rowCount === 1) return { value, inserted: true };
      const winner = await client.query<{ value: string }>(`SELECT value FROM wa_meta WHERE key = $1`, [key]);
      return { value: winner.rows[0]!.value, inserted: false };
    });
  }

  async hasValues(): Promise<boolean> {
    return (await this.query(ANY_VALUE)).rows.length > 0;
  }

  rewriteAll(
    transform: (value: string, sessionId: string, dataKey: string) => string,
    meta: Readonly<Record<string, string | null>>,
  ): Promise<number> {
    return this.tx(async (client) => {
      // Lock the whole table: no daemon may write a value under the old key while the rest is re-sealed.
      await client.query(`LOCK TABLE whatsapp_auth, wa_messages, wa_outbox IN EXCLUSIVE MODE`);
      const rows = await client.query<{ session_id: string; data_key: string; data_value: string }>(
        `SELECT session_id, data_key, data_value FROM whatsapp_auth`,
      );
      const sessions: string[] = [];
      const keys: string[] = [];
      const values: string[] = [];
      for (const row of rows.rows) {
        sessions.push(row.session_id);
        keys.push(row.data_key);
        values.push(transform(row.data_value, row.session_id, row.data_key));
      }
      for (let i = 0; i < sessions.length; i += 5000) {
        await client.query(
          `UPDATE whatsapp_auth a SET data_value = t.v FROM unnest($1::text[], $2::text[], $3::text[]) AS t(s, k, v)
           WHERE a.session_id = t.s AND a.data_key = t.k`,
          [sessions.slice(i, i + 5000), keys.slice(i, i + 5000), values.slice(i, i + 5000)],
        );
      }
      const messages = await client.query<{
        session_id: string;
        chat: string;
        sender: string;
        message_id: string;
        text: string | null;
        raw: string;
      }>(`SELECT session_id, chat, sender, message_id, text, raw FROM wa_messages`);
      let count = rows.rows.length;
      for (let i = 0; i < messages.rows.length; i += 2000) {
        const batch = messages.rows.slice(i, i + 2000).map((m) => {
          count += m.text === null ? 1 : 2;
          return {
            ...m,
            text:
              m.text === null
                ? null
                : transform(m.text, m.session_id, messageDataKey('text', m.chat, m.sender, m.message_id)),
            raw: transform(m.raw, m.session_id, messageDataKey('raw', m.chat, m.sender, m.message_id)),
          };
        });
        await client.query(
          `UPDATE wa_messages m SET text = t.x, raw = t.r
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS t(s, c, f, i, x, r)
           WHERE m.session_id = t.s AND m.chat = t.c AND m.sender = t.f AND m.message_id = t.i`,
          [
            batch.map((m) => m.session_id),
            batch.map((m) => m.chat),
            batch.map((m) => m.sender),
            batch.map((m) => m.message_id),
            batch.map((m) => m.text),
            batch.map((m) => m.raw),
          ],
        );
      }
      const outbox = await client.query<{ session_id: string; message_id: string; text: string }>(
        `SELECT session_id, message_id, text FROM wa_outbox`,
      );
      for (const row of outbox.rows) {
        await client.query(`UPDATE wa_outbox SET text = $3 WHERE session_id = $1 AND message_id = $2`, [
          row.session_id,
          row.message_id,
          transform(row.text, row.session_id, outboxDataKey(row.message_id)),
        ]);
        count++;
      }
      for (const [key, value] of Object.entries(meta)) {
        if (value === null) await client.query(`DELETE FROM wa_meta WHERE key = $1`, [key]);
        else
          await client.query(
            `INSERT INTO wa_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
            [key, value],
          );
      }
      return count;
    });
  }

  storeIncoming(session: string, messages: readonly IncomingMessage[], options: { replay: boolean }): Promise<number> {
    if (messages.length === 0) return Promise.resolve(0);
    return this.tx(async (client) => {
      await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
      const at = new Date().toISOString();
      let stored = 0;
      for (const m of messages) {
        const inserted = await client.query(
          `INSERT INTO wa_messages (session_id, chat, sender, message_id, direction, from_me, push_name, sent_at,
             received_at, kind, text, raw)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (session_id, chat, sender, message_id) DO NOTHING`,
          [session, m.chat, m.from, m.id, directionOf(m), m.fromMe, m.name, m.sentAt, at, m.kind, m.text, m.raw],
        );
        // A message seen before adds no event: exactly one `message` event per stored message.
        if (inserted.rowCount !== 1) continue;
        await client.query(
          `INSERT INTO wa_events (session_id, at, type, chat, sender, message_id, replay) VALUES ($1, $2, 'message', $3, $4, $5, $6)`,
          [session, at, m.chat, m.from, m.id, options.replay],
        );
        stored++;
      }
      if (stored > 0) await notifyEvents(client, session);
      return stored;
    });
  }

  appendEvent(session: string, event: EventInput): Promise<boolean> {
    return this.tx(async (client) => {
      await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
      const at = new Date().toISOString();
      if (event.type === 'undecryptable') {
        // Under the append lock, so two copies of one stub cannot both find "not seen yet".
        const seen = await client.query(
          `SELECT 1 FROM wa_messages WHERE session_id = $1 AND chat = $2 AND sender = $3 AND message_id = $4
           UNION ALL
           SELECT 1 FROM wa_events WHERE session_id = $1 AND message_id = $4 AND type = 'undecryptable'
             AND chat = $2 AND sender = $3
           LIMIT 1`,
          [session, event.chat, event.from, event.id],
        );
        if (seen.rows.length > 0) return false;
        await client.query(
          `INSERT INTO wa_events (session_id, at, type, chat, sender, message_id) VALUES ($1, $2, 'undecryptable', $3, $4, $5)`,
          [session, at, event.chat, event.from, event.id],
        );
        await notifyEvents(client, session);
        return true;
      }
      await client.query(`INSERT INTO wa_events (session_id, at, type, data) VALUES ($1, $2, $3, $4)`, [
        session,
        at,
        event.type,
        eventData(event),
      ]);
      await notifyEvents(client, session);
      return true;
    });
  }

  async readEvents(options: ReadEventsOptions = {}): Promise<StoredEvent[]> {
    const sessions = options.sessions && options.sessions.length > 0 ? [...options.sessions] : null;
    const result = await this.query<EventRow>(
      `SELECT e.cursor, e.session_id, e.at, e.type, e.chat, e.sender, e.message_id, e.replay, e.data,
         m.from_me, m.push_name, m.sent_at, m.kind, m.text, m.raw
       FROM wa_events e
       LEFT JOIN wa_messages m ON e.type = 'message' AND m.session_id = e.session_id AND m.chat = e.chat
         AND m.sender = e.sender AND m.message_id = e.message_id
       WHERE e.cursor > $1::bigint AND ($2::text[] IS NULL OR e.session_id = ANY($2::text[]))
       ORDER BY e.cursor
       LIMIT $3`,
      [options.since ?? '0', sessions, options.limit ?? null],
    );
    return result.rows.map(toStoredEvent).filter((e): e is StoredEvent => e !== undefined);
  }

  async lastCursor(): Promise<string> {
    const result = await this.query<{ c: string }>(`SELECT coalesce(max(cursor), 0)::text AS c FROM wa_events`);
    return result.rows[0]!.c;
  }

  pruneMessages(olderThanMs: number): Promise<PruneResult> {
    return this.tx(async (client) => {
      const cutoff = new Date(Date.now() - olderThanMs).toISOString();
      const messages = await client.query(`DELETE FROM wa_messages WHERE received_at < $1`, [cutoff]);
      const events = await client.query(`DELETE FROM wa_events WHERE at < $1`, [cutoff]);
      const outbox = await client.query(`DELETE FROM wa_outbox WHERE updated_at < $1 AND status = ANY($2::text[])`, [
        cutoff,
        [...FINAL_STATUSES],
      ]);
      return { messages: (messages.rowCount ?? 0) + (outbox.rowCount ?? 0), events: events.rowCount ?? 0 };
    });
  }

  enqueueMessage(session: string, input: OutgoingInput): Promise<EnqueueResult> {
    return this.tx(async (client) => {
      // The append lock serializes every outbox write with the event log, so two sends with one key cannot
      // both find "not used yet", and status events commit in cursor order.
      await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
      const key = input.key ?? null;
      if (key !== null) {
        const existing = await client.query<OutboxRow>(
          `SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = $1 AND idem_key = $2`,
          [session, key],
        );
        if (existing.rows[0]) return { message: toOutgoing(existing.rows[0]), created: false };
      }
      const at = new Date().toISOString();
      const inserted = await client.query<OutboxRow>(
        `INSERT INTO wa_outbox (session_id, message_id, recipient, text, idem_key, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6) RETURNING ${OUTBOX_COLUMNS}`,
        [session, input.id, input.to, input.text, key, at],
      );
      await insertStatusEvent(client, session, input.to, input.id, 'queued', null, at);
      await client.query(NOTIFY_SQL, [OUTBOX_CHANNEL, session]);
      return { message: toOutgoing(inserted.rows[0]!), created: true };
    });
  }

  async claimNextMessage(session: string, options: WriteOptions = {}): Promise<OutgoingMessage | undefined> {
    // Senders poll this every OUTBOX_POLL_MS: an idle outbox costs one indexed read, no lock.
    const waiting = await this.query(
      `SELECT 1 FROM wa_outbox WHERE session_id = $1 AND status IN ('queued', 'unknown') LIMIT 1`,
      [session],
    );
    if (waiting.rows.length === 0) return undefined;
    return this.tx(async (client) => {
      if (options.fence !== undefined) await lockForWrite(client, session, options.fence);
      await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
      const rows = await client.query<OutboxRow>(
        `SELECT ${OUTBOX_COLUMNS} FROM wa_outbox
         WHERE session_id = $1 AND status IN ('queued', 'sending', 'unknown') ORDER BY seq LIMIT 2`,
        [session],
      );
      // One in flight per session: while any message is `sending`, nothing else is claimed.
      if (rows.rows.length === 0 || rows.rows.some((r) => r.status === 'sending')) return undefined;
      return move(client, toOutgoing(rows.rows[0]!), 'sending', null);
    });
  }

  markMessage(
    session: string,
    id: string,
    status: OutgoingStatus,
    code: string | null = null,
  ): Promise<OutgoingMessage | undefined> {
    return this.tx(async (client) => {
      await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
      const row = await client.query<OutboxRow>(
        `SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = $1 AND message_id = $2`,
        [session, id],
      );
      if (!row.rows[0]) return undefined;
      const message = toOutgoing(row.rows[0]);
      return (await move(client, message, status, code)) ?? message;
    });
  }

  abandonInFlight(session: string, options: WriteOptions = {}): Promise<number> {
    return this.tx(async (client) => {
      if (options.fence !== undefined) await lockForWrite(client, session, options.fence);
      await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
      const rows = await client.query<OutboxRow>(
        `SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = $1 AND status = 'sending'`,
        [session],
      );
      let moved = 0;
      for (const row of rows.rows) if (await move(client, toOutgoing(row), 'unknown', null)) moved++;
      return moved;
    });
  }

  cancelMessage(session: string, id: string): Promise<OutgoingMessage | undefined> {
    return this.markMessage(session, id, 'cancelled');
  }

  async getOutgoing(session: string, id: string): Promise<OutgoingMessage | undefined> {
    const row = await this.query<OutboxRow>(
      `SELECT ${OUTBOX_COLUMNS} FROM wa_outbox WHERE session_id = $1 AND message_id = $2`,
      [session, id],
    );
    return row.rows[0] ? toOutgoing(row.rows[0]) : undefined;
  }

  async outboxCounts(): Promise<Map<string, OutboxCounts>> {
    const rows = await this.query<{ session_id: string; status: string; n: string }>(
      `SELECT session_id, status, count(*)::text AS n FROM wa_outbox
       WHERE status IN ('queued', 'unknown') GROUP BY session_id, status`,
    );
    return countsBySession(rows.rows);
  }

  async outboxTotals(): Promise<Map<OutgoingStatus, number>> {
    const rows = await this.query<{ status: OutgoingStatus; n: string }>(
      `SELECT status, count(*)::text AS n FROM wa_outbox GROUP BY status`,
    );
    return new Map(rows.rows.map((r) => [r.status, Number(r.n)]));
  }

  async sessionsWithEventsAfter(since: string): Promise<string[]> {
    // A range of the primary key: as cheap as lastCursor when nothing is newer.
    const result = await this.query<{ session_id: string }>(
      `SELECT DISTINCT session_id FROM wa_events WHERE cursor > $1::bigint`,
      [since],
    );
    return result.rows.map((row) => row.session_id);
  }

  async webhookPosition(session: string): Promise<WebhookPosition | undefined> {
    const result = await this.query<WebhookRow>(`SELECT ${WEBHOOK_COLUMNS} FROM wa_webhooks WHERE session_id = $1`, [
      session,
    ]);
    return result.rows[0] ? toWebhookPosition(result.rows[0]) : undefined;
  }

  recordWebhookDelivery(
    session: string,
    cursor: string,
    outcome: WebhookOutcome,
    options: WriteOptions,
  ): Promise<WebhookPosition> {
    return this.tx(async (client) => {
      // The lease row locked FOR UPDATE holds off a takeover until this commits (see lockForWrite).
      if (options.fence !== undefined) await lockForWrite(client, session, options.fence);
      const row = await client.query<WebhookRow>(
        `SELECT ${WEBHOOK_COLUMNS} FROM wa_webhooks WHERE session_id = $1 FOR UPDATE`,
        [session],
      );
      const current = row.rows[0] ? toWebhookPosition(row.rows[0]) : undefined;
      const at = new Date().toISOString();
      const next = nextWebhookPosition(current, session, cursor, outcome, at);
      if (!next) return current ?? emptyWebhookPosition(session, at);
      await client.query(
        `INSERT INTO wa_webhooks (${WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (session_id) DO UPDATE SET cursor = excluded.cursor, failing_cursor = excluded.failing_cursor,
           attempts = excluded.attempts, first_failed_at = excluded.first_failed_at, next_at = excluded.next_at,
           last_error = excluded.last_error, delivered = excluded.delivered, dead = excluded.dead,
           updated_at = excluded.updated_at`,
        webhookValues(next),
      );
      return next;
    });
  }

  async webhookStats(options: WebhookStatsOptions = {}): Promise<Map<string, WebhookStats>> {
    // One query for all sessions; each pending count is a range of the (session_id, cursor) index.
    const sessions = options.allSessions
      ? `(SELECT id FROM wa_sessions UNION SELECT session_id FROM wa_webhooks)`
      : `(SELECT session_id AS id FROM wa_webhooks)`;
    const result = await this.query<WebhookStatsRow>(
      `SELECT s.id, (w.session_id IS NOT NULL)::int AS tracked, w.delivered, w.dead, w.attempts, w.next_at,
         w.last_error,
         (SELECT count(*) FROM wa_events e WHERE e.session_id = s.id AND e.cursor > coalesce(w.cursor, 0)
           AND ($1::text[] IS NULL OR e.type = ANY($1::text[]))) AS pending
       FROM ${sessions} s LEFT JOIN wa_webhooks w ON w.session_id = s.id
       ORDER BY s.id COLLATE "C"`,
      [options.types ? [...options.types] : null],
    );
    return toWebhookStats(result.rows);
  }

  async compact(): Promise<boolean> {
    try {
      // VACUUM cannot run in a transaction block; pool.query runs it on its own. FULL writes a new copy of
      // the table and drops the old files, so no dead row version (an old sealed or clear value) remains.
      await this.pool.query(`VACUUM FULL whatsapp_auth`);
      await this.pool.query(`VACUUM FULL wa_messages`);
      return true;
    } catch {
      return false;
    }
  }

  raw(): SessionStore {
    return this;
  }

  permissionWarning(): undefined {
    return undefined;
  }

  watchChanges(listener: ChangeListener): () => void {
    return this.notifications.watch(listener);
  }

  async close(): Promise<void> {
    await this.notifications.close();
    if (this.ownsPool) await this.pool.end().catch(() => undefined);
  }
}

/**
 * Locks what a write must not race with, inside its transaction. Fenced: the session's lease row, which
 * must have the fence as owner and not have expired by the database's clock; FOR UPDATE holds off a
 * takeover (or renewal) until this write commits, and a write that waited for a takeover re-reads the row
 * and finds the new owner. Unfenced creds writes lock the registry row, so creds writes of one session
 * commit one at a time (the order within a process is kept by useStoreAuthState's chain).
 */
async function lockForWrite(client: pg.PoolClient, id: string, fence: string | undefined): Promise<void> {
  if (fence === undefined) {
    await client.query(`SELECT 1 FROM wa_sessions WHERE id = $1 FOR UPDATE`, [id]);
    return;
  }
  const held = await client.query(
    `SELECT 1 FROM wa_leases WHERE session_id = $1 AND owner_id = $2 AND expires_at > ${DB_NOW} FOR UPDATE`,
    [id, fence],
  );
  if (held.rows.length === 0) throw leaseLostError(id, fence);
}

async function insertStatusEvent(
  client: pg.PoolClient,
  session: string,
  to: string,
  id: string,
  status: OutgoingStatus,
  code: string | null,
  at: string,
): Promise<void> {
  await client.query(
    `INSERT INTO wa_events (session_id, at, type, chat, message_id, data) VALUES ($1, $2, 'status', $3, $4, $5)`,
    [session, at, to, id, statusData(status, code)],
  );
  await notifyEvents(client, session);
}

/** A hint for readers of the log (src/store/pg-notifications.ts), delivered when the transaction commits. */
async function notifyEvents(client: pg.PoolClient, session: string): Promise<void> {
  await client.query(NOTIFY_SQL, [EVENTS_CHANNEL, session]);
}

/** Under the append lock: sets the status and appends its event when the move is forward; undefined when not. */
async function move(
  client: pg.PoolClient,
  message: OutgoingMessage,
  status: OutgoingStatus,
  code: string | null,
): Promise<OutgoingMessage | undefined> {
  if (!canMoveStatus(message.status, status)) return undefined;
  const at = new Date().toISOString();
  const row = await client.query<OutboxRow>(
    `UPDATE wa_outbox SET status = $3, code = $4, updated_at = $5 WHERE session_id = $1 AND message_id = $2
     RETURNING ${OUTBOX_COLUMNS}`,
    [message.session, message.id, status, code, at],
  );
  await insertStatusEvent(client, message.session, message.to, message.id, status, code, at);
  return toOutgoing(row.rows[0]!);
}

/** The session's state, its registry row locked until the transaction ends (so `before` stays true). */
async function lockState(client: pg.PoolClient, id: string): Promise<string | undefined> {
  const row = await client.query<{ state: string }>(`SELECT state FROM wa_sessions WHERE id = $1 FOR UPDATE`, [id]);
  return row.rows[0]?.state;
}

/**
 * Inside the transaction that may have changed a session's state: appends a `state` event when it did,
 * so the log tells every state change exactly once, whichever process made it (see EVENT_APPEND_LOCK).
 */
async function noteStateChange(client: pg.PoolClient, id: string, before: string | undefined): Promise<void> {
  const row = await client.query<{ state: string }>(`SELECT state FROM wa_sessions WHERE id = $1`, [id]);
  const after = row.rows[0]?.state;
  if (before === undefined || after === undefined || before === after) return;
  await client.query(`SELECT pg_advisory_xact_lock(${EVENT_APPEND_LOCK})`);
  await client.query(`INSERT INTO wa_events (session_id, at, type, data) VALUES ($1, $2, 'state', $3)`, [
    id,
    new Date().toISOString(),
    JSON.stringify({ state: after }),
  ]);
  await notifyEvents(client, id);
}

/** Paired/unpaired from a creds write; stop states (logged_out, replaced) stay until a connect or logout. */
async function applySummary(client: pg.PoolClient, id: string, summary: CredsSummary, at: string): Promise<void> {
  await client.query(
    `UPDATE wa_sessions SET jid = $2, name = $3,
       state = CASE WHEN NOT $4 THEN 'unpaired' WHEN state = 'unpaired' THEN 'paired' ELSE state END,
       paired_at = CASE WHEN NOT $4 THEN NULL ELSE coalesce(paired_at, $5) END
     WHERE id = $1`,
    [id, summary.jid, summary.name, summary.paired, at],
  );
}

const toRecord = (row: PostgresSessionRow): SessionRecord =>
  toSessionRecord(row, typeof row.creds_text !== 'string' || isJson(row.creds_text));

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
