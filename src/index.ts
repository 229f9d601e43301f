/**
 * The `wa` library: keep Baileys auth state in the same database the `wa` CLI manages.
 *
 * ```ts
 * import makeWASocket from '@whiskeysockets/baileys'
 * import { useSqliteAuthState } from 'wa'
 * const { state, saveCreds } = await useSqliteAuthState('./data/wa.db', 'my-bot')
 * const sock = makeWASocket({ auth: state })
 * sock.ev.on('creds.update', saveCreds)
 * ```
 */
import type Database from 'better-sqlite3';
import { type StoreAuthState, useStoreAuthState } from './auth/auth-state.js';
import { SqliteStore } from './store/sqlite.js';

export type { StoreAuthState } from './auth/auth-state.js';
export { useStoreAuthState } from './auth/auth-state.js';
export { SqliteStore } from './store/sqlite.js';
export type * from './store/types.js';
export { WaError, ExitCode } from './errors.js';
export { BufferJSON } from './store/codec.js';

export interface SqliteAuthState extends StoreAuthState {
  /** Closes the database if this call opened it (a Database you passed in stays open). */
  close: () => Promise<void>;
}

/**
 * A drop-in for Baileys' `useMultiFileAuthState(folder)`, backed by a SQLite database (created with
 * mode 0600 if missing). `pathOrDb` is a file path or an open better-sqlite3 Database. The session is
 * registered, so `wa status` lists it. One `keys.set()` is one transaction: it applies whole or throws.
 */
export async function useSqliteAuthState(
  pathOrDb: string | Database.Database,
  sessionId: string,
): Promise<SqliteAuthState> {
  const store = new SqliteStore(pathOrDb);
  try {
    return { ...(await useStoreAuthState(store, sessionId)), close: () => store.close() };
  } catch (error) {
    await store.close();
    throw error;
  }
}
