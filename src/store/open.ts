/**
 * How a database is opened, for the CLI and the library alike: which backend the value names, the
 * read-only fallback for commands that only read, and encryption at rest recognized without a secret.
 */
import { existsSync } from 'node:fs';
import { isPostgresUrl } from '../config.js';
import { WaError } from '../errors.js';
import { ENCRYPTION_META_KEY } from './codec.js';
import type { SessionStore } from './types.js';

export interface StoreTarget {
  /** A SQLite file path (or `:memory:`), or a postgres:// URL. */
  db: string;
  /** `WA_SECRET`: values are sealed with it (src/store/sealed.ts). */
  secret: string | undefined;
}

export type OpenMode =
  /** Creates and migrates the database as needed. */
  | 'write'
  /**
   * Never creates one: undefined when the SQLite file does not exist, and a read-only connection when the
   * file cannot be written (so `wa status` works on a read-only copy).
   */
  | 'read';

export async function openStore(target: StoreTarget, mode: 'write'): Promise<SessionStore>;
export async function openStore(target: StoreTarget, mode: 'read'): Promise<SessionStore | undefined>;
export async function openStore(target: StoreTarget, mode: OpenMode): Promise<SessionStore | undefined> {
  const backend = await openBackend(target.db, mode);
  if (!backend) return undefined;
  return seal(backend, target.secret, mode === 'write');
}

/**
 * Encryption at rest wraps whichever backend opened: values are sealed with the secret, and an encrypted
 * database is recognized (not misread as corrupt) without it. A database in clear opened without a secret
 * needs no wrapper, which keeps node:crypto out of `wa status`.
 */
export async function seal(
  backend: SessionStore,
  secret: string | undefined,
  writable: boolean,
): Promise<SessionStore> {
  try {
    if (secret === undefined && (await backend.getMeta(ENCRYPTION_META_KEY)) === undefined) return backend;
    const { SealedStore } = await import('./sealed.js');
    return new SealedStore(backend, { secret, writable });
  } catch (error) {
    await backend.close();
    throw error;
  }
}

async function openBackend(db: string, mode: OpenMode): Promise<SessionStore | undefined> {
  if (isPostgresUrl(db)) {
    const { PostgresStore } = await import('./postgres.js');
    return PostgresStore.open(db);
  }
  const { SqliteStore } = await import('./sqlite.js');
  if (mode === 'read' && db !== ':memory:' && !existsSync(db)) return undefined;
  try {
    return new SqliteStore(db);
  } catch (error) {
    if (mode === 'read' && error instanceof WaError && error.code === 'E_DB_READONLY') {
      return new SqliteStore(db, { readonly: true });
    }
    throw error;
  }
}
