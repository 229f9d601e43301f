/**
 * `startSessions()` (README "Library"): the session manager `wa serve` runs (src/daemon/session-manager.ts:
 * leases, pacing, backoff, watchdog, capture of every received message, the outbox), inside a bot's own
 * process, with an API instead of HTTP: `send`, `events` (the event log as an async iterable that resumes
 * from a cursor), `socket` (the live Baileys socket, the escape hatch), `status` and `close`.
 *
 * Options only: unlike the CLI, the library reads no environment variable (a bot passes
 * `process.env.WA_DB` and friends itself, as the README's example does). Baileys, pino and the daemon's
 * modules are loaded when startSessions() is called, so importing 'wa' for useSqliteAuthState stays light.
 */
import { hostname } from 'node:os';
import type { WASocket } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';
import { settleBy, systemClock } from '../clock.js';
import {
  checkDb,
  checkWsUrl,
  DEFAULT_KEEP_DAYS,
  MAX_KEEP_DAYS,
  parseWebhook,
  timingWith,
  type Timing,
  type WebhookConfig,
} from '../config.js';
import { SendError } from '../daemon/message-desk.js';
import type { SessionManager } from '../daemon/session-manager.js';
import type { WaitingSession } from '../daemon/supervisor.js';
import { ExitCode, usageError, WaError } from '../errors.js';
import { assertSessionId } from '../session-id.js';
import { CURSOR_PATTERN, eventFeed, eventJson, type EventJson } from '../session/event-feed.js';
import { newOwner, type LeaseOwner } from '../session/lease.js';
import { WAIT_STATES, type WaitState } from '../session/message-wait.js';
import { sessionView, type SessionView } from '../session/session-view.js';
import { openStore } from '../store/open.js';
import type { ConnectionState, OutboxCounts, OutgoingStatus, SessionStore } from '../store/types.js';

export type { EventJson as WaEvent } from '../session/event-feed.js';
export type { WaitState } from '../session/message-wait.js';

export interface StartSessionsOptions {
  /** A SQLite file path (created with mode 0600 if missing) or a `postgres://` URL: what `WA_DB` is to the CLI. */
  db: string;
  /**
   * Run only these sessions (as `wa serve <id…>`); each must exist. Absent or empty: every paired session
   * this process may own, including ones paired later. Also the default of `events()`.
   */
  sessions?: readonly string[] | undefined;
  /** The database's `WA_SECRET` (README "Encryption at rest"); an empty string counts as none, as in the CLI. */
  secret?: string | undefined;
  /** The WhatsApp endpoint (`WA_WS_URL`): a ws:// or wss:// URL; Baileys' default when absent or empty. */
  wsUrl?: string | undefined;
  /**
   * A pino logger (or anything with pino's interface) for wa's own lines; Baileys gets a child of it at
   * `warn` unless this one is at `debug`/`trace` or quieter than warn. Default: warnings and errors as JSON
   * lines on stderr.
   */
  logger?: Logger | undefined;
  /** Received messages and events stored longer ago than this many days are pruned (`WA_KEEP_DAYS`, default 30). */
  keepDays?: number | undefined;
  /**
   * Advanced (tests, tuning): overrides of wa's timing in milliseconds, the keys of `WA_TIMING` (README
   * "Options and environment"), held to the same rules.
   */
  timing?: Partial<Timing> | undefined;
  /**
   * Post each event of the sessions this process owns to `url` (README "Webhooks"), as `wa serve` does with
   * WA_WEBHOOK_URL, WA_WEBHOOK_SECRET and WA_WEBHOOK_EVENTS (the same checks, and the same delivery
   * position in the database, so a daemon taking the session over continues where the bot stopped).
   */
  webhook?: { url: string; secret: string; events?: readonly string[] | undefined } | undefined;
}

export interface SendOptions {
  /** Idempotency key (1–200 characters): the same session and key return the message accepted first, never a second send. */
  key?: string | undefined;
  /**
   * Resolve once the message is accepted (`queued`, the default: it is in the outbox, and whoever owns the
   * session sends it, now or after a reconnect or restart), once WhatsApp's server acknowledged it
   * (`sent`, `wa send`'s default) or once the recipient's device received it (`delivered`).
   */
  wait?: WaitState | undefined;
  /** How long `sent`/`delivered` is waited for (default 60 000); a message still queued then is cancelled. */
  timeoutMs?: number | undefined;
}

/** A message as `wa send --json` prints it. */
export interface SentMessage {
  id: string;
  session: string;
  /** The normalized recipient jid (a number's LID when WhatsApp knows one). */
  to: string;
  status: OutgoingStatus;
  /** WhatsApp's error code for `rejected`, or `not-on-whatsapp`. */
  code: string | null;
}

export interface EventsOptions {
  /** Only events after this cursor (exclusive), as a previous event carried it; absent or '': from the oldest event kept. */
  since?: string | undefined;
  /** Only these sessions (each must exist); default: the `sessions` given to startSessions(), else all. */
  sessions?: readonly string[] | undefined;
  /** Keep waiting for new events after the stored ones, until the loop is left or close() is called. Default true. */
  follow?: boolean | undefined;
}

/** One session as `wa status --json` shows it, with what this process knows live. */
export type SessionStatus = SessionView & {
  /** Messages waiting (`queued`) or ambiguous (`unknown`), present only when there are any. */
  outbox?: OutboxCounts;
  /** Whether this process holds the session's lease; `connection` is then this process's live state. */
  ownedHere: boolean;
};

export interface SessionsStatus {
  /** The database, fit to print (a PostgreSQL URL without its password). */
  db: string;
  /** This process's lease owner id (`library-<8 hex>`), as `wa status` shows it in `owner.id`. */
  owner: string;
  /** The newest event's cursor ('0' when there is none): `events({ since })` from here skips the history. */
  cursor: string;
  /** Every paired session this process may own is open (or knowingly waits for another live owner), as `/readyz`. */
  ready: boolean;
  sessions: SessionStatus[];
  /** Sessions another live process holds: taken once it lets go. */
  waiting: WaitingSession[];
}

export interface WaSessions {
  /**
   * Queues a text through the outbox (README "Sending messages"); `to` takes the forms of `wa send`
   * (`+15551234567`, `15551234567`, `…@s.whatsapp.net`, `<lid>@lid`). Throws a WaError for a bad recipient,
   * empty or over-long text or an unknown session (E_SESSION_UNKNOWN), a session that is not paired
   * (E_NOT_PAIRED), and a SendError (with `outgoing`) for a rejection, a timeout or close() while waiting.
   */
  send(session: string, to: string, text: string, options?: SendOptions): Promise<SentMessage>;
  /**
   * The event log, oldest first (README "Receiving messages"): `message`, `undecryptable`, `connection`,
   * `state` and `status` events as `wa listen --json` prints them (`raw` a JSON object). At least once:
   * keep the last `cursor` you handled and pass it as `since` after a restart. Leaving the loop stops the
   * polling; close() ends every iterator.
   */
  events(options?: EventsOptions): AsyncGenerator<EventJson, void, undefined>;
  /** The live Baileys socket of a session this process owns while it is open, else undefined. */
  socket(session: string): WASocket | undefined;
  status(): Promise<SessionsStatus>;
  /**
   * Ends every events() iterator, closes every socket without logging out (received messages are stored
   * first), releases the leases and closes the database; then nothing keeps the process alive. Idempotent.
   * Queued messages stay in the outbox for the session's next owner.
   */
  close(): Promise<void>;
}

/** How long close() waits for sockets and lease releases (as serve's SIGTERM: README "The daemon"), then for the store. */
const STOP_DEADLINE_MS = 6_000;
const STORE_CLOSE_GRACE_MS = 1_000;

/**
 * Starts the session manager and resolves once its first look for sessions is done (the sessions it took
 * are then connecting). Throws a WaError for bad options (exit code 2), a database that cannot be opened,
 * a missing or wrong secret (5), or a session in `sessions` that does not exist (2).
 */
export async function startSessions(options: StartSessionsOptions): Promise<WaSessions> {
  const settings = checkOptions(options);
  const store = await openStore({ db: settings.db, secret: settings.secret }, 'write');
  let manager: SessionManager | undefined;
  try {
    const { unlockValues } = await import('../store/sealed.js');
    await unlockValues(store); // a missing or wrong secret fails now, before any lease is taken
    const baileysModule = await import('../session/baileys.js');
    const logger = options.logger ?? (await baileysModule.createLogger('warn', process.stderr));
    for (const id of settings.sessions) {
      const session = await requireSession(store, id);
      if (session.state !== 'paired') {
        logger.warn({ session: id }, `session '${id}' is ${session.state}; it is run once paired (wa connect ${id})`);
      }
    }
    const exposed = store.permissionWarning();
    if (exposed) logger.warn(exposed);
    if (store.backend === 'sqlite') {
      // The failure this project was born from: a login kept where a redeploy wipes it (README "Deploying").
      const { databaseFilesystem } = await import('../store/filesystem.js');
      const filesystem = databaseFilesystem(settings.db);
      if (filesystem?.warning) {
        logger.warn({ filesystem: filesystem.type, mountPoint: filesystem.mountPoint }, filesystem.warning);
      }
    }
    const [{ SessionManager }, baileys] = await Promise.all([
      import('../daemon/session-manager.js'),
      baileysModule.loadBaileys(),
    ]);
    // The same host identity as the CLI's (bin/wa.js passes hostname() and the pid): `wa status` shows
    // this process as the owner, and `wa connect`/`wa send` on this host know the lease of a bot killed
    // with SIGKILL for stale at once (holderIsGone in src/session/lease.ts).
    const owner = newOwner('library', hostname(), process.pid);
    // What serve passes too, minus pairing.
    const managerOptions = {
      store,
      baileys,
      wsUrl: settings.wsUrl,
      timing: settings.timing,
      keepDays: settings.keepDays,
      logger,
      baileysLogger: logger.child({ component: 'baileys' }, { level: baileysModule.baileysLevel(logger.level) }),
      owner,
      only: settings.sessions,
      webhook: settings.webhook,
    };
    manager = new SessionManager(managerOptions);
    await manager.start();
    logger.info({ owner: owner.ownerId, db: store.location, sessions: settings.sessions }, 'wa sessions started');
    return new RunningSessions(store, manager, owner, settings.sessions, logger);
  } catch (error) {
    // Nothing left behind by a start that failed: no retention timer, no lease, no open database.
    await manager?.stop([], STOP_DEADLINE_MS).catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}

interface Settings {
  db: string;
  secret: string | undefined;
  wsUrl: string | undefined;
  sessions: string[];
  keepDays: number;
  timing: Timing;
  webhook: WebhookConfig | undefined;
}

/** Every option checked before anything is opened, with the CLI's rules and messages (src/config.ts). */
function checkOptions(options: StartSessionsOptions): Settings {
  if (typeof options !== 'object' || options === null) {
    throw usageError('E_CONFIG', 'startSessions: expected an options object, like { db: "./data/wa.db" }');
  }
  const { db } = options;
  if (typeof db !== 'string' || db.trim() === '') {
    throw usageError('E_CONFIG', 'startSessions: `db` must be a SQLite file path or a postgres:// URL');
  }
  checkDb(db);
  // An empty wsUrl or secret (an environment variable set to nothing) counts as none, as in the CLI.
  const wsUrl = options.wsUrl === '' ? undefined : options.wsUrl;
  if (wsUrl !== undefined) checkWsUrl(wsUrl);
  if (options.secret !== undefined && typeof options.secret !== 'string') {
    throw usageError('E_CONFIG', 'startSessions: `secret` must be a string');
  }
  if (options.sessions !== undefined && !Array.isArray(options.sessions)) {
    throw usageError('E_CONFIG', 'startSessions: `sessions` must be an array of session ids');
  }
  const sessions = [...new Set<string>(options.sessions ?? [])].map((id) => assertSessionId(id));
  const keepDays = options.keepDays ?? DEFAULT_KEEP_DAYS;
  if (typeof keepDays !== 'number' || !(keepDays > 0 && keepDays <= MAX_KEEP_DAYS)) {
    throw usageError(
      'E_CONFIG',
      `invalid keepDays ${JSON.stringify(keepDays)}: expected a number of days between 0 and ${MAX_KEEP_DAYS} (default ${DEFAULT_KEEP_DAYS})`,
    );
  }
  return {
    db,
    secret: options.secret === '' ? undefined : options.secret,
    wsUrl,
    sessions,
    keepDays,
    timing: timingWith(options.timing ?? {}),
    webhook:
      options.webhook === undefined
        ? undefined
        : parseWebhook(options.webhook.url, options.webhook.secret, options.webhook.events?.join(',')),
  };
}

async function requireSession(store: SessionStore, id: string) {
  const session = await store.getSession(assertSessionId(id));
  if (!session)
    throw usageError('E_SESSION_UNKNOWN', `no session '${id}' in ${store.location}`, { hint: `wa add ${id}` });
  return session;
}

function checkCursor(since: string | undefined): string | undefined {
  if (since === undefined) return undefined;
  const cursor = typeof since === 'string' ? since.trim() : since;
  if (cursor === '') return undefined;
  if (typeof cursor !== 'string' || !CURSOR_PATTERN.test(cursor)) {
    throw usageError(
      'E_USAGE',
      `since must be an event cursor (a decimal string, like "42"), not ${JSON.stringify(since)}`,
    );
  }
  return cursor;
}

const closedError = (): WaError =>
  new WaError(ExitCode.usage, 'E_CLOSED', 'these sessions were closed (close() was called)');

class RunningSessions implements WaSessions {
  /** Aborted by close(): ends every events() iterator and every send() still waiting. */
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;
  private readonly store: SessionStore;
  private readonly manager: SessionManager;
  private readonly owner: LeaseOwner;
  private readonly only: readonly string[];
  private readonly logger: Logger;

  constructor(
    store: SessionStore,
    manager: SessionManager,
    owner: LeaseOwner,
    only: readonly string[],
    logger: Logger,
  ) {
    this.store = store;
    this.manager = manager;
    this.owner = owner;
    this.only = only;
    this.logger = logger;
  }

  async send(session: string, to: string, text: string, options: SendOptions = {}): Promise<SentMessage> {
    if (this.closing.signal.aborted) throw closedError();
    const wait = options.wait ?? 'queued';
    if (!WAIT_STATES.includes(wait)) {
      throw usageError('E_USAGE', `wait must be one of ${WAIT_STATES.join(', ')}, not ${JSON.stringify(wait)}`);
    }
    if (options.timeoutMs !== undefined && !(typeof options.timeoutMs === 'number' && options.timeoutMs > 0)) {
      throw usageError('E_USAGE', `timeoutMs must be a positive number of milliseconds`);
    }
    if (typeof to !== 'string') throw usageError('E_RECIPIENT', 'to: expected a phone number or a jid');
    if (typeof text !== 'string') throw usageError('E_TEXT', 'text: expected a string');
    try {
      const { message } = await this.manager.desk.send({
        session,
        to,
        text,
        key: options.key,
        wait,
        timeoutMs: options.timeoutMs,
        signal: this.closing.signal,
      });
      return printed(message);
    } catch (error) {
      // A wait cut short by close() is neither a timeout nor someone else's cancel: say so (the desk
      // cancelled the message if it was still queued, so it is never sent after this caller heard it failed).
      if (
        error instanceof SendError &&
        (error.code === 'E_TIMEOUT' || error.code === 'E_CANCELLED') &&
        this.closing.signal.aborted
      ) {
        const now = error.outgoing;
        throw new SendError(
          ExitCode.unavailable,
          'E_CLOSED',
          `close() was called before the message reached ${wait}; it is ${now.status}`,
          now,
        );
      }
      throw error;
    }
  }

  events(options: EventsOptions = {}): AsyncGenerator<EventJson, void, undefined> {
    const { store, closing } = this;
    const sessions = options.sessions ?? this.only;
    return (async function* feed(): AsyncGenerator<EventJson, void, undefined> {
      if (closing.signal.aborted) return;
      const since = checkCursor(options.since);
      for (const id of sessions) await requireSession(store, id);
      try {
        for await (const event of eventFeed(store, {
          since,
          sessions,
          follow: options.follow ?? true,
          signal: closing.signal,
        })) {
          yield eventJson(event);
        }
      } catch (error) {
        // close() may close the store under a read in flight: the iterator simply ends, as close() promises.
        if (closing.signal.aborted) return;
        throw error;
      }
    })();
  }

  socket(session: string): WASocket | undefined {
    return this.manager.supervisor.socket(session);
  }

  async status(): Promise<SessionsStatus> {
    if (this.closing.signal.aborted) throw closedError();
    const { store, manager } = this;
    const [listed, outbox, cursor] = await Promise.all([
      store.listSessions(),
      store.outboxCounts().catch(() => new Map<string, OutboxCounts>()),
      store.lastCursor(),
    ]);
    const live = new Map<string, ConnectionState>(manager.supervisor.owned().map((s) => [s.id, s.connection]));
    const shown = this.only.length > 0 ? listed.filter((s) => this.only.includes(s.id)) : listed;
    return {
      db: store.location,
      owner: this.owner.ownerId,
      cursor,
      ready: manager.supervisor.readiness().ready,
      sessions: shown.map((session): SessionStatus => {
        const view = sessionView(session);
        const connection = live.get(session.id);
        const counts = outbox.get(session.id);
        return {
          ...view,
          ...(connection !== undefined ? { connection } : {}),
          ...(counts ? { outbox: counts } : {}),
          ownedHere: connection !== undefined,
        };
      }),
      waiting: manager.supervisor.waiting(),
    };
  }

  close(): Promise<void> {
    this.closed ??= this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    this.closing.abort();
    const deadlineAt = systemClock.monotonic() + STOP_DEADLINE_MS;
    const stopping = this.manager.stop([], STOP_DEADLINE_MS).catch((error: unknown) => {
      this.logger.error({ err: error }, 'closing the sessions failed');
    });
    if (!(await settleBy(stopping, deadlineAt))) {
      this.logger.warn('the database did not answer in time; closing without waiting (leases expire on their own)');
    }
    await settleBy(
      this.store.close().catch((error: unknown) => this.logger.error({ err: error }, 'closing the database failed')),
      deadlineAt + STORE_CLOSE_GRACE_MS,
    );
  }
}

const printed = (message: SentMessage): SentMessage => ({
  id: message.id,
  session: message.session,
  to: message.to,
  status: message.status,
  code: message.code,
});
