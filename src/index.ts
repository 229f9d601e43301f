/**
 * The `wa` library (README "Library"): run the daemon's session manager inside your own process with
 * `startSessions({ db })` — leases, backoff, watchdog, every received message stored, a durable outbox —
 * or keep Baileys auth state in the same database the `wa` CLI manages:
 *
 * ```ts
 * import makeWASocket from '@whiskeysockets/baileys'
 * import { useSqliteAuthState } from 'wa'
 * const { state, saveCreds } = await useSqliteAuthState('./data/wa.db', 'my-bot')
 * const sock = makeWASocket({ auth: state })
 * sock.ev.on('creds.update', saveCreds)
 * ```
 *
 * With encryption at rest, pass the database's secret as a third argument: `{ secret: process.env.WA_SECRET }`.
 */
import type Database from 'better-sqlite3';
import { type StoreAuthState, useStoreAuthState } from './auth/auth-state.js';
import { seal } from './store/open.js';
import { unlockValues } from './store/sealed.js';
import { SqliteStore } from './store/sqlite.js';
import type { SessionStore } from './store/types.js';

export type { StoreAuthState } from './auth/auth-state.js';
export { useStoreAuthState } from './auth/auth-state.js';
export { SqliteStore } from './store/sqlite.js';
export { SealedStore, type SealedStoreOptions } from './store/sealed.js';
export type * from './store/types.js';
export { WaError, ExitCode } from './errors.js';
export { BufferJSON } from './store/codec.js';
export { SendError } from './daemon/message-desk.js';
export type { Timing } from './config.js';
export type { WaitingSession } from './daemon/supervisor.js';
export type { SessionView } from './session/session-view.js';
export {
  startSessions,
  type EventsOptions,
  type SendOptions,
  type SentMessage,
  type SessionStatus,
  type SessionsStatus,
  type StartSessionsOptions,
  type WaEvent,
  type WaitState,
  type WaSessions,
} from './library/start-sessions.js';

export interface SqliteAuthStateOptions {
  /**
   * The database's `WA_SECRET`: every value is sealed with AES-256-GCM (see the README, "Encryption at
   * rest"). A fresh database is set up for encryption on first use; a database sealed with another
   * secret, or holding values in clear, is refused with a WaError (exit code 5) before anything is written.
   * Without it, an encrypted database is refused the same way.
   */
  secret?: string | undefined;
}

export interface SqliteAuthState extends StoreAuthState {
  /** Closes the database if this call opened it (a Database you passed in stays open). */
  close: () => Promise<void>;
}

/**
 * A drop-in for Baileys' `useMultiFileAuthState(folder)`, backed by a SQLite database (created with
 * mode 0600 if missing). `pathOrDb` is a file path or an open better-sqlite3 Database. The session is
 * registered, so `wa status` lists it. One `keys.set()` is one transaction: it applies whole or throws.
 * For an encrypted database pass its secret: `useSqliteAuthState(path, id, { secret: process.env.WA_SECRET })`.
 */
export async function useSqliteAuthState(
  pathOrDb: string | Database.Database,
  sessionId: string,
  options: SqliteAuthStateOptions = {},
): Promise<SqliteAuthState> {
  return openAuthState(await seal(new SqliteStore(pathOrDb), options.secret, true), sessionId);
}

/** The same opening policy as the CLI's (src/store/open.ts): an encrypted database is recognized without a secret. */
async function openAuthState(
  store: SessionStore,
  sessionId: string,
): Promise<StoreAuthState & { close: () => Promise<void> }> {
  try {
    await unlockValues(store); // a missing or wrong secret fails here, before the session is even registered
    return { ...(await useStoreAuthState(store, sessionId)), close: () => store.close() };
  } catch (error) {
    await store.close();
    throw error;
  }
}

export interface PostgresAuthState extends StoreAuthState {
  /** Ends the connection pool if this call made it (a pg.Pool you passed in stays open). */
  close: () => Promise<void>;
}

/**
 * The PostgreSQL twin of `useSqliteAuthState`: `urlOrPool` is a `postgres://` URL or a `pg.Pool`. The
 * tables live in the connection's default schema (created and migrated on first use), and sessions are
 * shared with every `wa` process and daemon using the same database. `pg` is loaded only when called.
 */
export async function usePostgresAuthState(
  urlOrPool: string | import('pg').Pool,
  sessionId: string,
  options: SqliteAuthStateOptions = {},
): Promise<PostgresAuthState> {
  const { PostgresStore } = await import('./store/postgres.js');
  return openAuthState(await seal(await PostgresStore.open(urlOrPool), options.secret, true), sessionId);
}
