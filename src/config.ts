import { usageError } from './errors.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** A SQLite file path, or a postgres:// URL. */
  db: string;
  /** WhatsApp WebSocket endpoint; undefined means Baileys' default. */
  wsUrl: string | undefined;
  /** Undefined means the command's own default (warn, or info for serve). */
  logLevel: LogLevel | undefined;
  json: boolean;
}

export interface GlobalFlags {
  db?: string | undefined;
  wsUrl?: string | undefined;
  logLevel?: string | undefined;
  json?: boolean | undefined;
}

export const DEFAULT_DB = './data/wa.db';

export const isPostgresUrl = (value: string): boolean => /^postgres(ql)?:\/\//i.test(value);

/** Flag, then environment, then default (SPEC "Where data lives"). Pure: env is a parameter. */
export function resolveConfig(flags: GlobalFlags, env: Readonly<Record<string, string | undefined>>): Config {
  const nonEmpty = (value: string | undefined): string | undefined =>
    value === undefined || value === '' ? undefined : value;
  const databaseUrl = nonEmpty(env.DATABASE_URL);
  const db =
    nonEmpty(flags.db) ?? nonEmpty(env.WA_DB) ?? (databaseUrl && isPostgresUrl(databaseUrl) ? databaseUrl : DEFAULT_DB);
  if (flags.db === '') throw usageError('E_CONFIG', '--db must not be empty', { hint: 'wa --db ./data/wa.db status' });

  const wsUrl = nonEmpty(flags.wsUrl) ?? nonEmpty(env.WA_WS_URL);
  if (wsUrl !== undefined && !/^wss?:\/\/[^\s]+$/i.test(wsUrl)) {
    throw usageError('E_CONFIG', `invalid WhatsApp endpoint ${JSON.stringify(wsUrl)}: expected a ws:// or wss:// URL`);
  }

  const level = nonEmpty(flags.logLevel) ?? nonEmpty(env.WA_LOG_LEVEL);
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw usageError('E_CONFIG', `invalid log level ${JSON.stringify(level)}: use one of ${LOG_LEVELS.join(', ')}`);
  }
  return { db, wsUrl, logLevel: level as LogLevel | undefined, json: flags.json === true };
}
