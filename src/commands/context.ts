import type { Config } from '../config.js';
import type { Logger } from 'pino';
import type { SessionStore } from '../store/types.js';
import type { Output } from '../terminal/output.js';

/**
 * What every command receives from the CLI edge (src/cli/main.ts). Commands never read process.* : the
 * environment arrives resolved in `config`, streams as `out`, signals as `signal`.
 */
export interface Context {
  config: Config;
  out: Output;
  /** Aborted on the first Ctrl-C / SIGTERM; long-running commands stop gracefully when it fires. */
  signal: AbortSignal;
  host: string;
  pid: number;
  /** What the process itself reports (unhandled rejections, dependencies' console output), caught at the edge. */
  processLog: ProcessLog;
  /** Reads all of stdin as UTF-8 (`wa send` without text); absent where there is no stdin. */
  readStdin?: (() => Promise<string>) | undefined;
  /**
   * 'write' creates and migrates the database as needed. 'read' never creates one: it returns undefined
   * when the SQLite file does not exist, and falls back to a read-only connection when the file cannot
   * be written (so `wa status` works on a read-only copy).
   */
  openStore(mode: 'write'): Promise<SessionStore>;
  openStore(mode: 'read'): Promise<SessionStore | undefined>;
}

/**
 * The edge installs the process-wide `unhandledRejection` handler and takes over `console`, and forwards
 * both here. Rejections are counted (serve exports the count in /metrics) and logged at debug, never
 * silently dropped and never fatal. Console output of dependencies (libsignal prints whole session
 * records, private keys included) never reaches stdout: its strings are logged at debug, objects never.
 */
export interface ProcessLog {
  /** Unhandled rejections so far. */
  readonly rejections: number;
  /** Where to log from now on (the command's own logger). */
  logTo(logger: Logger): void;
}
