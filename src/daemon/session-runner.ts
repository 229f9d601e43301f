import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { isWaError } from '../errors.js';
import type { Timing } from '../config.js';
import { closedPatch, untilClosed, type SessionSocket, type SocketFactory } from '../session/connection.js';
import type { Disconnect } from '../session/disconnect.js';
import { SessionAuth } from '../session/session-auth.js';
import type { ConnectionState, SessionStore } from '../store/types.js';
import { backoffDelay, type ConnectLimiter } from './backoff.js';
import type { Metrics } from './metrics.js';
import type { WebhookDelivery, WebhookDispatcher } from './webhooks.js';

/**
 * Consecutive 515s (restart required) answered by an immediate reconnect; later ones get backoff. A pairing
 * needs one (Baileys' lib/Socket/socket.js ends the socket with 515 after pair-success).
 */
const RESTARTS_AT_ONCE = 3;

/** 429 (rate-overlimit): at least a minute before this session tries again, doubling, capped (README "The daemon"). */
const RATE_LIMIT_BACKOFF_MS = 60_000;
const RATE_LIMIT_BACKOFF_CAP_MS = 16 * 60_000;

/**
 * Error codes that reopening cannot fix: stored data that is not what it should be, or a secret that does
 * not open it (src/auth/auth-state.ts, src/store/sealed.ts). Everything else that can fail while opening
 * a session (a locked or unreachable database, I/O, a timeout) passes, so it is retried with backoff.
 */
const PERMANENT_OPEN_FAILURES = new Set([
  'E_CORRUPT',
  'E_DB_CORRUPT',
  'E_UNSEAL',
  'E_WRONG_SECRET',
  'E_SECRET_REQUIRED',
  'E_ENCRYPTION_META',
]);

/** What to do when loading a session's auth state failed: stop (permanent), retry, or yield to the lease's new owner. */
export function classifyOpenFailure(error: unknown): { action: 'stop' | 'retry' | 'lease_lost'; message: string } {
  const message = error instanceof Error ? error.message : String(error);
  if (isWaError(error) && error.code === 'E_LEASE_LOST') return { action: 'lease_lost', message };
  if (isWaError(error) && PERMANENT_OPEN_FAILURES.has(error.code)) return { action: 'stop', message };
  return { action: 'retry', message };
}

/** What the daemon's parts share: the store, the socket factory, logging, settings, metrics and time. */
export interface DaemonServices {
  store: SessionStore;
  /** Makes sockets: Baileys' in production (src/session/baileys.ts), a scripted one in tests. */
  openSocket: SocketFactory;
  /** wa's own log lines. */
  logger: Logger;
  /** Handed to Baileys (usually quieter than ours). */
  baileysLogger: Logger;
  timing: Timing;
  metrics: Metrics;
  clock: Clock;
  /** Posts owned sessions' events to WA_WEBHOOK_URL (README "Webhooks"); absent when not configured. */
  webhooks?: WebhookDispatcher | undefined;
}

export interface RunnerDeps extends DaemonServices {
  id: string;
  /** Our lease owner id: every auth write is fenced by it (a write after the lease is gone is refused). */
  ownerId: string;
  limiter: ConnectLimiter;
  /** Called once when the runner stops on its own (logged out, replaced, a stop reason). */
  onStopped: (id: string, disconnect: Disconnect) => void;
}

/**
 * Keeps one session connected: connect, watch, and on close apply the disconnect policy (README "The
 * daemon"): 515 at once; 401/403 logged_out and 440 replaced stop the session; 405 and failed identity
 * checks stop it with that reason; anything else reconnects with full-jitter backoff, forever, never
 * touching the credentials. A watchdog tears down a connection that went silent or never opened, because
 * Baileys alone can wait ~30 s for a dead peer, or hang in `connecting` forever after an HTTP error answer
 * to the WebSocket upgrade (test/wa-server/README.md shows both faults).
 */
export class SessionRunner {
  readonly id: string;
  connection: ConnectionState = 'closed';
  private readonly deps: RunnerDeps;
  private readonly abort = new AbortController();
  private done: Promise<void> = Promise.resolve();
  private socket: SessionSocket | undefined;
  private auth: SessionAuth | undefined;
  /** Set when the lease was lost: the new owner writes the session's state from now on. */
  private silent = false;
  private recording: Promise<void> = Promise.resolve();
  /** Set when a fenced auth write was refused: the lease is gone, so stop quietly (the new owner writes). */
  private leaseLost = false;
  /** This session's webhook worker: it runs exactly as long as the runner (and so the lease), connected or not. */
  private deliveries: WebhookDelivery | undefined;
  private deliveriesStopped: Promise<void> | undefined;

  constructor(deps: RunnerDeps) {
    this.deps = deps;
    this.id = deps.id;
  }

  /** The Baileys socket while the connection is open (the library's escape hatch, recipient checks); else undefined. */
  liveSocket(): SessionSocket['baileys'] {
    return this.connection === 'open' ? this.socket?.baileys : undefined;
  }

  start(): void {
    this.deliveries = this.deps.webhooks?.deliver(this.id, this.deps.ownerId);
    this.done = this.loop()
      .catch(async (error: unknown) => {
        this.deps.logger.error({ err: error }, 'session runner failed');
        const disconnect: Disconnect = {
          code: null,
          reason: error instanceof Error ? error.message : String(error),
          action: 'stop',
        };
        await this.recordDisconnect(disconnect);
        await this.stopped(disconnect);
      })
      .finally(() => this.stopDeliveries());
  }

  /**
   * The runner stops itself (logged out, replaced, a stop reason): the session's webhook worker first gets
   * a moment to post what is stored, the `state` event saying why included, since nobody owns the session
   * afterwards; then the supervisor releases the lease.
   */
  private async stopped(disconnect: Disconnect): Promise<void> {
    await this.stopDeliveries({ drainMs: this.deps.timing.webhookTimeoutMs });
    this.deps.onStopped(this.id, disconnect);
  }

  /**
   * Stops the webhook worker: once for a plain stop, whoever asks first (stop(), the loop's end). A plain
   * stop during a self-stop's drain goes through to the worker, which cuts the drain short (shutdown).
   */
  private stopDeliveries(options?: { drainMs?: number }): Promise<void> {
    if (options?.drainMs !== undefined) return this.deliveries?.stop(options) ?? Promise.resolve();
    this.deliveriesStopped ??= this.deliveries?.stop() ?? Promise.resolve();
    return this.deliveriesStopped;
  }

  /**
   * Closes the connection without logging out and waits for pending key writes. With `leaseLost`, it
   * also stops writing the session's state (another process owns it now).
   */
  async stop(options: { leaseLost?: boolean } = {}): Promise<void> {
    if (options.leaseLost) this.silent = true;
    this.abort.abort();
    // The webhook worker stops beside the socket, not after it: a shutdown waits for the slower of the two.
    await Promise.all([this.done, this.stopDeliveries()]);
  }

  /**
   * Writes the session's live state. Writes are chained so they land in the order they were made: on
   * PostgreSQL two pooled connections could otherwise commit 'connecting' after 'open'.
   */
  private record(patch: Parameters<SessionStore['updateSession']>[1]): Promise<void> {
    this.recording = this.recording.then(async () => {
      if (this.silent) return;
      await this.deps.store.updateSession(this.id, patch).catch((error: unknown) => {
        this.deps.logger.warn({ err: error }, 'could not record the session state');
      });
    });
    return this.recording;
  }

  /** Records why the session stopped or could not open, so `wa status` shows it. */
  private recordDisconnect(disconnect: Disconnect): Promise<void> {
    const at = new Date(this.deps.clock.now()).toISOString();
    return this.record({ lastDisconnect: { code: disconnect.code, reason: disconnect.reason, at } });
  }

  /** Loads the session's auth state, fenced by our lease. */
  private async openAuth(): Promise<SessionAuth> {
    const { store, metrics, logger } = this.deps;
    const auth = await SessionAuth.open(store, this.id, {
      deferCredsUntilPaired: false,
      fence: this.deps.ownerId,
      retryCreds: {
        baseMs: this.deps.timing.backoffBaseMs,
        capMs: this.deps.timing.backoffCapMs,
        clock: this.deps.clock,
      },
    });
    auth.stats.onCommit = (ms, ok) => metrics.keyStoreWrite(ms, ok);
    // A refused fenced write proves the lease is someone else's: retrying can never succeed, and our
    // socket would only fight the new owner's (WhatsApp answers two logins with 440). Close quietly.
    auth.onLeaseLost(() => {
      if (this.abort.signal.aborted) return;
      logger.warn('lease lost (a fenced write was refused); closing this session quietly');
      this.leaseLost = true;
      this.silent = true;
      this.abort.abort();
    });
    return auth;
  }

  private backoff(attempt: number): number {
    const { timing } = this.deps;
    return backoffDelay(attempt, {
      baseMs: timing.backoffBaseMs,
      capMs: timing.backoffCapMs,
      resetAfterMs: timing.backoffResetMs,
    });
  }

  private async loop(): Promise<void> {
    const { timing, logger } = this.deps;
    const signal = this.abort.signal;
    let auth: SessionAuth | undefined;
    let attempt = 0;
    /** 515s in a row without an open in between. */
    let restarts = 0;
    /** 429s in a row without an open in between. */
    let rateLimits = 0;
    try {
      while (!signal.aborted) {
        if (!auth) {
          try {
            auth = await this.openAuth();
            this.auth = auth;
          } catch (error) {
            if (signal.aborted) break;
            const failure = classifyOpenFailure(error);
            if (failure.action === 'lease_lost') {
              logger.warn('lease lost while opening the session; closing it quietly');
              this.leaseLost = true;
              this.silent = true;
              break;
            }
            const disconnect: Disconnect = {
              code: null,
              reason: `could not open the session's stored state: ${failure.message}`,
              action: failure.action,
            };
            this.deps.metrics.disconnect(null, failure.action);
            await this.recordDisconnect(disconnect);
            if (failure.action === 'stop') {
              logger.error({ err: error, reason: disconnect.reason, action: 'stop' }, 'session stopped');
              await this.stopped(disconnect);
              return;
            }
            const delay = this.backoff(attempt++);
            logger.warn(
              { err: error, reason: disconnect.reason, action: 'retry', attempt, delayMs: delay },
              'could not open the session; retrying after backoff',
            );
            await this.deps.clock.sleep(delay, signal);
            continue;
          }
        }
        await this.deps.limiter.take(signal);
        if (signal.aborted) break;
        const { disconnect, openFor } = await this.connectOnce(auth);
        if (signal.aborted) break;

        this.deps.metrics.disconnect(disconnect.code, disconnect.action);
        this.connection = 'closed';
        if ((disconnect.action === 'replaced' || disconnect.action === 'logged_out') && !(await this.leaseIsOurs())) {
          // A `--takeover` logs in before our renewal notices the lost lease, and WhatsApp answers the new
          // login with 440 on our socket: not a replacement but a handover. Recording `replaced` now would
          // race the new owner's `paired`, so write nothing and let it go.
          logger.info(
            { code: disconnect.code, reason: disconnect.reason },
            'closed by WhatsApp after another process took the lease; closing quietly',
          );
          this.leaseLost = true;
          this.silent = true;
          break;
        }
        await this.record(closedPatch(disconnect, true, new Date(this.deps.clock.now())));
        const fields = { code: disconnect.code, reason: disconnect.reason, action: disconnect.action };

        if (openFor !== null) restarts = rateLimits = 0;
        // The pacing learns from every outcome but our own close and the 515 a pairing always ends with.
        if (disconnect.code === 429) this.deps.limiter.rateLimited();
        else if (disconnect.action !== 'closed' && disconnect.action !== 'restart') this.deps.limiter.failed();
        if (disconnect.action === 'restart' && ++restarts <= RESTARTS_AT_ONCE) {
          logger.info(fields, 'restart requested by WhatsApp; reconnecting');
          continue;
        }
        if (disconnect.action === 'logged_out' || disconnect.action === 'replaced') {
          logger.warn(
            fields,
            disconnect.action === 'logged_out'
              ? 'logged out by WhatsApp; session stopped'
              : 'replaced by another client; session stopped',
          );
          await this.stopped(disconnect);
          return;
        }
        if (disconnect.action === 'stop' || disconnect.action === 'qr_expired') {
          if (disconnect.code === null) await this.recordDisconnect(disconnect); // closedPatch records coded ones
          logger.error({ ...fields, ...(disconnect.detail ? { detail: disconnect.detail } : {}) }, 'session stopped');
          await this.stopped(disconnect);
          return;
        }
        if (openFor !== null && openFor >= timing.backoffResetMs) attempt = 0;
        let delay = this.backoff(attempt++);
        // A server that answers every login with 515 would otherwise be hit in a tight loop: past the few
        // restarts a pairing needs, wait at least half the base (full jitter alone can draw ~0).
        if (disconnect.action === 'restart') delay = Math.max(delay, Math.floor(timing.backoffBaseMs / 2));
        if (disconnect.code === 429) {
          delay = Math.min(RATE_LIMIT_BACKOFF_CAP_MS, RATE_LIMIT_BACKOFF_MS * 2 ** rateLimits++) + delay;
        }
        logger.info({ ...fields, attempt, delayMs: delay }, 'disconnected; reconnecting after backoff');
        await this.deps.clock.sleep(delay, signal);
      }
    } finally {
      // Graceful: close without logging out, let pending key writes land, then stop writing.
      if (this.socket) await this.socket.end();
      this.socket = undefined;
      await auth?.close();
      if (this.connection !== 'closed') await this.record({ connection: 'closed' });
      this.connection = 'closed';
    }
    if (this.leaseLost) this.deps.onStopped(this.id, { code: null, reason: 'lease lost', action: 'closed' });
  }

  /**
   * Whether the session's lease is still ours, read from the database. A failed read counts as not ours:
   * closing quietly costs a reconnect at most (discovery takes the session again if nobody else has it),
   * recording a wrong `replaced` stops it for good.
   */
  private async leaseIsOurs(): Promise<boolean> {
    const session = await this.deps.store.getSession(this.id).catch(() => undefined);
    return session?.lease?.ownerId === this.deps.ownerId;
  }

  /** One socket from connect to close. Resolves with why it closed and how long it was open. */
  private async connectOnce(auth: SessionAuth): Promise<{ disconnect: Disconnect; openFor: number | null }> {
    const { openSocket, baileysLogger, timing, logger, metrics, clock } = this.deps;
    const socket = openSocket(auth, baileysLogger);
    this.socket = socket;
    this.connection = 'connecting';
    void this.record({ connection: 'connecting' });

    const startedAt = clock.now();
    let lastFrameAt = startedAt;
    let openedAt: number | null = null;
    socket.onFrame(() => (lastFrameAt = clock.now()));

    // The watchdog: tear the socket down now rather than waiting for a close handshake from a peer that is gone.
    const dead = new AbortController();
    let deadReason = '';
    const abandon = (reason: string): void => {
      deadReason = reason;
      dead.abort(); // first: the close that terminating causes is ours, not the server's
      socket.terminate();
    };
    const stopWatchdog = clock.every(
      // Half the grace: a dead link is caught within keep-alive + 1.5 × grace, at 0.2 checks a second per
      // session (100 idle sessions cost 20 timer wake-ups a second, not 100).
      Math.max(250, timing.livenessGraceMs / 2),
      () => {
        const now = clock.now();
        if (openedAt === null && now - startedAt > timing.connectTimeoutMs + timing.livenessGraceMs / 2) {
          abandon(`not connected after ${Math.round((now - startedAt) / 1000)}s (stuck connecting)`);
        } else if (openedAt !== null && now - lastFrameAt > timing.keepAliveMs + timing.livenessGraceMs) {
          abandon(`no data from the server for ${Math.round((now - lastFrameAt) / 1000)}s`);
        }
      },
    );
    try {
      const outcome = await untilClosed(socket, {
        signal: AbortSignal.any([this.abort.signal, dead.signal]),
        onUpdate: (update) => {
          if (update.connection !== 'open') return;
          openedAt = clock.now();
          lastFrameAt = openedAt;
          this.connection = 'open';
          metrics.connect('open');
          this.deps.limiter.opened();
          logger.info({ jid: auth.state.creds.me?.id, ms: openedAt - startedAt }, 'connection open');
          void this.record({ connection: 'open', lastConnectedAt: new Date(openedAt).toISOString() });
        },
      });
      let disconnect: Disconnect;
      if (outcome.kind === 'closed') disconnect = outcome.disconnect;
      else if (dead.signal.aborted) disconnect = { code: 408, reason: deadReason, action: 'retry' };
      else disconnect = { code: null, reason: 'serve stopping', action: 'closed' };
      if (disconnect.action !== 'closed' && this.socket === socket) this.socket = undefined;
      if (openedAt === null && disconnect.action !== 'closed') metrics.connect('failed');
      return { disconnect, openFor: openedAt === null ? null : clock.now() - openedAt };
    } finally {
      stopWatchdog();
    }
  }
}
