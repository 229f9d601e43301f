import { existsSync } from 'node:fs';
import type { Config } from '../config.js';
import { isPostgresUrl } from '../config.js';
import { WaError } from '../errors.js';
import { ENCRYPTION_META_KEY } from '../store/codec.js';
import type { SessionStore } from '../store/types.js';
import type { Output } from './output.js';

/** What every command receives from the CLI edge; commands never read process.* themselves. */
export interface Context {
  config: Config;
  out: Output;
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted on the first Ctrl-C / SIGTERM; long-running commands stop gracefully when it fires. */
  signal: AbortSignal;
  host: string;
  pid: number;
  /**
   * 'write' creates and migrates the database as needed. 'read' never creates one: it returns undefined
   * when the SQLite file does not exist, and falls back to a read-only connection when the file cannot
   * be written (so `wa status` works on a read-only copy).
   */
  openStore(mode: 'write'): Promise<SessionStore>;
  openStore(mode: 'read'): Promise<SessionStore | undefined>;
}

export async function openStore(config: Config, mode: 'write' | 'read'): Promise<SessionStore | undefined> {
  const backend = await openBackend(config, mode);
  if (!backend) return undefined;
  // Encryption at rest wraps whichever backend opened (src/store/sealed.ts): values are sealed with
  // WA_SECRET, and an encrypted database is recognized (not misread as corrupt) without it. A database in
  // clear opened without a secret needs no wrapper, which keeps node:crypto out of `wa status`.
  if (config.secret === undefined && (await backend.getMeta(ENCRYPTION_META_KEY)) === undefined) return backend;
  const { SealedStore } = await import('../store/sealed.js');
  return new SealedStore(backend, { secret: config.secret, writable: mode === 'write' });
}

async function openBackend(config: Config, mode: 'write' | 'read'): Promise<SessionStore | undefined> {
  if (isPostgresUrl(config.db)) {
    const { PostgresStore } = await import('../store/postgres.js');
    return PostgresStore.open(config.db);
  }
  const { SqliteStore } = await import('../store/sqlite.js');
  if (mode === 'read' && config.db !== ':memory:' && !existsSync(config.db)) return undefined;
  try {
    return new SqliteStore(config.db);
  } catch (error) {
    if (mode === 'read' && error instanceof WaError && error.code === 'E_DB_READONLY') {
      return new SqliteStore(config.db, { readonly: true });
    }
    throw error;
  }
}
