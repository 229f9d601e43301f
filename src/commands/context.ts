import type { Config } from '../config.js';
import type { Logger } from '../session/baileys.js';
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
  /** Unhandled promise rejections of this process, counted at the edge (Baileys leaves some behind as sockets die). */
  rejections: RejectionLog;
  /**
   * 'write' creates and migrates the database as needed. 'read' never creates one: it returns undefined
   * when the SQLite file does not exist, and falls back to a read-only connection when the file cannot
   * be written (so `wa status` works on a read-only copy).
   */
  openStore(mode: 'write'): Promise<SessionStore>;
  openStore(mode: 'read'): Promise<SessionStore | undefined>;
}

/**
 * The edge installs the process-wide `unhandledRejection` handler and forwards each rejection here:
 * counted (serve exports it in /metrics) and logged at debug by the logger a command attached, never
 * silently dropped and never fatal.
 */
export interface RejectionLog {
  readonly count: number;
  /** Where to log rejections from now on (the command's own logger). */
  logTo(logger: Logger): void;
}
