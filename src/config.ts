import { usageError } from './errors.js';
import { hasUrlScheme, isPostgresUrl, postgresUrlProblem, redactDbUrl } from './db-url.js';
import { EVENT_TYPES, type EventType } from './event-types.js';

export { isPostgresUrl };

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
  timing: Timing;
  /** `WA_SECRET`: seals stored values (src/store/sealed.ts). Never printed or logged. */
  secret: string | undefined;
  /** `WA_NEW_SECRET`: what `wa rekey` seals with. Never printed or logged. */
  newSecret: string | undefined;
  /** `WA_API_TOKEN`: the bearer token of the daemon's HTTP routes (all but /healthz). */
  apiToken: string | undefined;
  /** `WA_KEEP_DAYS` (default 30): `wa serve` prunes messages and events stored longer ago than this. */
  keepDays: number;
  /** `PORT` (set by container platforms): `wa serve` then listens on 0.0.0.0:$PORT unless --http says otherwise. */
  port: number | undefined;
  /** `WA_WEBHOOK_URL` and its companions: where `wa serve` posts events (README "Webhooks"); undefined when unset. */
  webhook: WebhookConfig | undefined;
}

/** README "Webhooks". */
export interface WebhookConfig {
  /** `WA_WEBHOOK_URL`: an http:// or https:// URL. */
  url: string;
  /** `WA_WEBHOOK_SECRET`: signs every request (HMAC-SHA256). Never printed or logged. */
  secret: string;
  /** `WA_WEBHOOK_EVENTS`: the event types posted; undefined posts every type. */
  events: readonly EventType[] | undefined;
}

/** Every delay wa uses on the network side, in milliseconds. */
export interface Timing {
  /** Baileys' keep-alive ping interval (WhatsApp expects 30 s). */
  keepAliveMs: number;
  /** A connection with no frame for keepAliveMs + this long is dead and torn down. */
  livenessGraceMs: number;
  /** A socket not open after this long is abandoned (Baileys can hang in `connecting` forever). */
  connectTimeoutMs: number;
  leaseTtlMs: number;
  leaseRenewMs: number;
  /** How often serve looks for sessions paired or released since. */
  discoveryMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  backoffResetMs: number;
  /** Connects started per second by one serve process: where the pacing starts, and falls back to on failure. */
  connectsPerSecond: number;
  /**
   * How long each pairing QR lives; 0 keeps Baileys' own (60 s for the first, 20 s for each later one,
   * lib/Socket/socket.js). Tests shorten it to see a rotation without waiting a minute.
   */
  qrTimeoutMs: number;
  /** The ceiling the pacing ramps up to while connects succeed (src/daemon/backoff.ts ConnectLimiter). */
  maxConnectsPerSecond: number;
  /** A webhook POST not answered (status line and headers) within this long failed (README "Webhooks"). */
  webhookTimeoutMs: number;
  /** Webhook retries: full-jitter exponential backoff from this base ... */
  webhookBaseMs: number;
  /** ... up to this cap ... */
  webhookCapMs: number;
  /** ... for this long after an event's first failure; then the event is dead. */
  webhookMaxAgeMs: number;
  /** How often one serve process looks for new events to post (one cheap query for all its sessions). */
  webhookPollMs: number;
}

export const DEFAULT_TIMING: Timing = {
  keepAliveMs: 30_000,
  livenessGraceMs: 10_000,
  connectTimeoutMs: 20_000,
  leaseTtlMs: 30_000,
  leaseRenewMs: 10_000,
  discoveryMs: 5_000,
  backoffBaseMs: 1_000,
  backoffCapMs: 60_000,
  backoffResetMs: 60_000,
  connectsPerSecond: 5,
  qrTimeoutMs: 0,
  maxConnectsPerSecond: 50,
  webhookTimeoutMs: 10_000,
  webhookBaseMs: 1_000,
  webhookCapMs: 5 * 60_000,
  webhookMaxAgeMs: 24 * 3_600_000,
  webhookPollMs: 50,
};

/**
 * `WA_TIMING=key=value,…` overrides timing (tests shrink keep-alive, leases and backoff with it so fault
 * tests run in seconds; operators should rarely need it). Unknown keys and non-positive values are refused.
 */
export function parseTiming(spec: string | undefined): Timing {
  const timing = { ...DEFAULT_TIMING };
  if (!spec) return timing;
  for (const part of spec.split(',').filter(Boolean)) {
    const [key = '', raw = ''] = part.split('=').map((x) => x.trim());
    const value = Number(raw);
    if (!(key in timing) || !Number.isFinite(value) || value <= 0) {
      throw usageError(
        'E_CONFIG',
        `invalid WA_TIMING entry ${JSON.stringify(part)}: use key=milliseconds with keys ${Object.keys(timing).join(', ')}`,
      );
    }
    timing[key as keyof Timing] = value;
  }
  return checkTiming(timing, 'WA_TIMING');
}

/**
 * The library's `timing` option (src/library/start-sessions.ts): the defaults with these overrides, held to
 * the same rules as WA_TIMING. `name` is how errors call the setting.
 */
export function timingWith(overrides: Readonly<Partial<Record<string, unknown>>>, name = 'timing'): Timing {
  const timing = { ...DEFAULT_TIMING };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (!(key in timing) || typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw usageError(
        'E_CONFIG',
        `invalid ${name}.${key} ${JSON.stringify(value)}: use positive milliseconds with keys ${Object.keys(timing).join(', ')}`,
      );
    }
    timing[key as keyof Timing] = value;
  }
  return checkTiming(timing, name);
}

function checkTiming(timing: Timing, name: string): Timing {
  const inconsistent = (why: string): never => {
    throw usageError('E_CONFIG', `invalid ${name}: ${why}`);
  };
  // A lease renewed no sooner than it expires is lost between renewals; the others are as plainly wrong.
  if (timing.leaseRenewMs >= timing.leaseTtlMs) inconsistent('leaseRenewMs must be less than leaseTtlMs');
  if (timing.backoffBaseMs > timing.backoffCapMs) inconsistent('backoffBaseMs must not exceed backoffCapMs');
  if (timing.webhookBaseMs > timing.webhookCapMs) inconsistent('webhookBaseMs must not exceed webhookCapMs');
  if (timing.connectsPerSecond > 1000) inconsistent('connectsPerSecond must be at most 1000');
  if (timing.maxConnectsPerSecond > 1000) inconsistent('maxConnectsPerSecond must be at most 1000');
  return timing;
}

export interface GlobalFlags {
  db?: string | undefined;
  wsUrl?: string | undefined;
  logLevel?: string | undefined;
  json?: boolean | undefined;
}

export const DEFAULT_DB = './data/wa.db';

/**
 * A URL other than postgres(ql):// is refused rather than taken as a SQLite path (which would create
 * directories named after it), and a PostgreSQL URL must parse. Messages show the URL redacted.
 */
export function checkDb(db: string): void {
  if (isPostgresUrl(db)) {
    const problem = postgresUrlProblem(db);
    if (problem) {
      throw usageError('E_CONFIG', `invalid PostgreSQL URL ${redactDbUrl(db)}: ${problem}`, {
        hint: 'wa --db postgres://user:password@host:5432/database status',
      });
    }
  } else if (hasUrlScheme(db)) {
    throw usageError(
      'E_CONFIG',
      `unsupported database URL ${redactDbUrl(db)}: use postgres:// or postgresql:// for PostgreSQL, or a file path for SQLite`,
      { hint: 'wa --db ./data/wa.db status' },
    );
  }
}

/**
 * Flag, then environment, then default (README "Options and environment"). Pure: env is a parameter, and this is the
 * only place that reads it, so commands never see the raw environment.
 */
export function resolveConfig(flags: GlobalFlags, env: Readonly<Record<string, string | undefined>>): Config {
  const nonEmpty = (value: string | undefined): string | undefined =>
    value === undefined || value === '' ? undefined : value;
  const databaseUrl = nonEmpty(env.DATABASE_URL);
  const db =
    nonEmpty(flags.db) ?? nonEmpty(env.WA_DB) ?? (databaseUrl && isPostgresUrl(databaseUrl) ? databaseUrl : DEFAULT_DB);
  if (flags.db === '') throw usageError('E_CONFIG', '--db must not be empty', { hint: 'wa --db ./data/wa.db status' });
  checkDb(db);

  const wsUrl = nonEmpty(flags.wsUrl) ?? nonEmpty(env.WA_WS_URL);
  if (wsUrl !== undefined) checkWsUrl(wsUrl);

  const level = nonEmpty(flags.logLevel) ?? nonEmpty(env.WA_LOG_LEVEL);
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw usageError('E_CONFIG', `invalid log level ${JSON.stringify(level)}: use one of ${LOG_LEVELS.join(', ')}`);
  }
  // An empty token must not silently turn authentication off (it is set, but to nothing).
  if (env.WA_API_TOKEN !== undefined && env.WA_API_TOKEN.trim() === '') {
    throw usageError('E_CONFIG', 'WA_API_TOKEN is set but empty: set a token, or unset it', {
      hint: 'export WA_API_TOKEN="$(openssl rand -hex 32)"',
    });
  }
  return {
    db,
    wsUrl,
    logLevel: level as LogLevel | undefined,
    json: flags.json === true,
    timing: parseTiming(env.WA_TIMING),
    secret: nonEmpty(env.WA_SECRET),
    newSecret: nonEmpty(env.WA_NEW_SECRET),
    apiToken: nonEmpty(env.WA_API_TOKEN),
    port: parsePort(nonEmpty(env.PORT)),
    keepDays: parseKeepDays(nonEmpty(env.WA_KEEP_DAYS)),
    webhook: parseWebhook(nonEmpty(env.WA_WEBHOOK_URL), env.WA_WEBHOOK_SECRET, nonEmpty(env.WA_WEBHOOK_EVENTS)),
  };
}

/** A WhatsApp endpoint (`--ws-url`, WA_WS_URL, the library's `wsUrl`) is a ws:// or wss:// URL. */
export function checkWsUrl(wsUrl: string): void {
  if (!/^wss?:\/\/[^\s]+$/i.test(wsUrl)) {
    throw usageError('E_CONFIG', `invalid WhatsApp endpoint ${JSON.stringify(wsUrl)}: expected a ws:// or wss:// URL`);
  }
}

/**
 * README "Webhooks". The URL must be http(s) and comes with a secret (a receiver that cannot verify the
 * signature cannot tell our requests from anyone's). The event list is checked even without a URL, so a
 * typo never waits for the day the URL is set. Messages never show the secret, nor the URL's user info.
 */
export function parseWebhook(
  url: string | undefined,
  secret: string | undefined,
  events: string | undefined,
): WebhookConfig | undefined {
  const types = events === undefined ? undefined : parseEventTypes(events);
  if (url === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw usageError(
      'E_CONFIG',
      `invalid WA_WEBHOOK_URL ${JSON.stringify(redactUrl(url))}: expected an http:// or https:// URL`,
      {
        hint: 'export WA_WEBHOOK_URL=https://example.com/wa-events',
      },
    );
  }
  if (secret === undefined || secret.trim() === '') {
    throw usageError(
      'E_CONFIG',
      'WA_WEBHOOK_URL is set but WA_WEBHOOK_SECRET is not: every webhook request is signed with it',
      {
        hint: 'export WA_WEBHOOK_SECRET="$(openssl rand -hex 32)"',
      },
    );
  }
  return { url, secret, events: types };
}

function parseEventTypes(list: string): readonly EventType[] {
  const names = list
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !(EVENT_TYPES as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw usageError(
      'E_CONFIG',
      `invalid WA_WEBHOOK_EVENTS ${JSON.stringify(list)}: ${unknown.length > 0 ? `unknown event type ${unknown.map((n) => JSON.stringify(n)).join(', ')}` : 'no event type'}; use a comma-separated list of ${EVENT_TYPES.join(', ')}`,
      { hint: 'export WA_WEBHOOK_EVENTS=message,status' },
    );
  }
  return EVENT_TYPES.filter((type) => names.includes(type));
}

/** A URL without its user info (a password may sit there), for messages. */
function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@?#]*@/i, '$1***@');
}

export const DEFAULT_KEEP_DAYS = 30;
/** The most WA_KEEP_DAYS (and the library's `keepDays`) may be: 100 years. */
export const MAX_KEEP_DAYS = 36_500;

/** A plain decimal number of days, more than 0 and at most 100 years (no `1e3`, no `0x10`, no `-1`). */
function parseKeepDays(value: string | undefined): number {
  if (value === undefined) return DEFAULT_KEEP_DAYS;
  const days = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : NaN;
  if (!(days > 0 && days <= MAX_KEEP_DAYS)) {
    throw usageError(
      'E_CONFIG',
      `invalid WA_KEEP_DAYS ${JSON.stringify(value)}: expected a number of days between 0 and 36500 (default ${DEFAULT_KEEP_DAYS})`,
      { hint: 'export WA_KEEP_DAYS=30' },
    );
  }
  return days;
}

function parsePort(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw usageError('E_CONFIG', `invalid PORT ${JSON.stringify(value)}: expected a TCP port number (1-65535)`);
  }
  return port;
}
