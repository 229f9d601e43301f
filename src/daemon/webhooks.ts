/**
 * Webhooks (README "Webhooks"): the daemon that owns a session POSTs each of its events to WA_WEBHOOK_URL,
 * one per request, signed, strictly in cursor order per session, at least once. The position lives in the
 * database (`wa_webhooks`, src/store/webhook-rows.ts) and is moved only by the lease owner (fenced), so
 * whichever process owns the session next goes on from it, failure count and first failure time included.
 *
 * One worker per owned session, started and stopped by its SessionRunner. Workers do not poll the event
 * log themselves: one shared poll per process reads `lastCursor()` (one index lookup) every
 * webhookPollMs, and only when it moved asks which sessions have new events and wakes their workers.
 */
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { settleBy, systemClock, type Clock } from '../clock.js';
import type { Timing, WebhookConfig } from '../config.js';
import { isWaError } from '../errors.js';
import { emptyWebhookPosition } from '../store/webhook-rows.js';
import { eventJson } from '../store/message-rows.js';
import type { SessionStore, StoredEvent, WebhookOutcome, WebhookPosition, WebhookStats } from '../store/types.js';
import { backoffDelay } from './backoff.js';
import { sharedRead } from './http.js';
import type { Metrics } from './metrics.js';

export type WebhookTiming = Pick<
  Timing,
  'webhookTimeoutMs' | 'webhookBaseMs' | 'webhookCapMs' | 'webhookMaxAgeMs' | 'webhookPollMs'
>;

export interface WebhookDispatcherOptions {
  store: SessionStore;
  config: WebhookConfig;
  timing: WebhookTiming;
  logger: Logger;
  /** Schedules retries and polls, and stamps signatures (a manual clock in tests). */
  clock: Clock;
  metrics?: Metrics | undefined;
  /** The backoff's jitter (tests pin it). */
  random?: (() => number) | undefined;
  /**
   * How long stop() lets an in-flight POST finish before aborting it, in real time like the request
   * itself. An aborted POST may have reached the receiver: the next owner posts it again (at least once).
   */
  stopGraceMs?: number | undefined;
}

export interface WebhookDelivery {
  /**
   * Stops the session's worker: waits at most stopGraceMs for a POST in flight, then aborts it; never
   * hangs. With `drainMs`, first gives the worker that long to post what is stored by now (a session
   * that stopped itself, logged out say, has no owner afterwards to post its last `state` event).
   */
  stop(options?: { drainMs?: number }): Promise<void>;
}

/** Events read per query: each is posted on its own anyway, and a long backlog is streamed, not loaded. */
const BATCH = 20;
const DEFAULT_STOP_GRACE_MS = 1000;
/** How long one read of the delivery stats answers /metrics (as the sessions read beside it). */
const STATS_CACHE_MS = 1000;
/** Backoff for failing reads and writes of the position (the database, not the receiver). */
const STORE_RETRY = { baseMs: 500, capMs: 30_000, resetAfterMs: 0 };

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the X-Wa-Signature header. */
export function webhookSignature(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** The request body of an event: exactly one line of `wa listen --json`. */
export const webhookBody = (event: StoredEvent): string => JSON.stringify(eventJson(event));

type Attempt = { ok: true } | { ok: false; error: string } | { ok: false; aborted: true };

/** Why a fetch failed, in a few words: the cause's code (ECONNREFUSED, ...), never the URL or a body. */
function fetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return `connection failed (${cause.code})`;
  if (typeof cause?.message === 'string') return `connection failed (${cause.message.slice(0, 100)})`;
  return `request failed (${error instanceof Error ? error.message.slice(0, 100) : 'unknown error'})`;
}

/** Posts events of the sessions this process owns; see the module comment. */
export class WebhookDispatcher {
  private readonly options: WebhookDispatcherOptions;
  private readonly workers = new Map<string, SessionWorker>();
  /** The cursor the shared poll last saw; undefined until its first look (which wakes every worker). */
  private seen: string | undefined;
  private stopPolling: (() => void) | undefined;
  private polling = false;
  private pollFailing = false;
  private readonly filter: ((event: StoredEvent) => boolean) | undefined;
  /** Per session pending (of the configured types), dead and last error, for /metrics: one query a second at most. */
  readonly stats: () => Promise<Map<string, WebhookStats>>;

  constructor(options: WebhookDispatcherOptions) {
    this.options = options;
    this.stats = sharedRead(
      () => options.store.webhookStats({ types: options.config.events, allSessions: true }),
      STATS_CACHE_MS,
      options.clock,
    );
    const types = options.config.events;
    this.filter = types ? (event) => types.includes(event.type) : undefined;
    // The origin only: a path or query may carry a token of the receiver's.
    options.logger.info(
      { webhook: new URL(options.config.url).origin, events: types ?? 'all' },
      'posting events to the webhook',
    );
  }

  /** Starts posting the session's events; `ownerId` fences every position write (our lease). */
  deliver(sessionId: string, ownerId: string): WebhookDelivery {
    // One worker per session: a new one (the session taken again) starts only once the last has stopped,
    // or two would post the same session's events side by side, out of order.
    const previous = this.workers.get(sessionId);
    const worker = new SessionWorker(this, sessionId, ownerId, previous?.finished);
    this.workers.set(sessionId, worker);
    this.ensurePolling();
    void worker.finished.then(() => {
      if (this.workers.get(sessionId) === worker) this.workers.delete(sessionId);
      if (this.workers.size === 0) this.pausePolling();
    });
    return { stop: (options) => worker.stop(options) };
  }

  /** Stops every worker (serve's shutdown; each runner normally stops its own). */
  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    this.pausePolling();
  }

  /** @internal for workers */
  get deps(): WebhookDispatcherOptions {
    return this.options;
  }

  /** @internal for workers: whether WA_WEBHOOK_EVENTS lets this event through. */
  wants(event: StoredEvent): boolean {
    return this.filter ? this.filter(event) : true;
  }

  private ensurePolling(): void {
    if (this.stopPolling) return;
    this.seen = undefined;
    const stopTimer = this.options.clock.every(this.options.timing.webhookPollMs, () => void this.poll());
    // The store's change hints (an event stored by this process, or by any on PostgreSQL) wake the session's
    // worker at once; the poll stays, for writers the hints do not reach (other processes on SQLite).
    const unwatch = this.options.store.watchChanges((change) => {
      if (change.kind === 'events') this.workers.get(change.session)?.wake();
    });
    this.stopPolling = () => {
      stopTimer();
      unwatch();
    };
  }

  private pausePolling(): void {
    this.stopPolling?.();
    this.stopPolling = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling) return; // a slow database: one look at a time
    this.polling = true;
    const { store, logger } = this.options;
    try {
      const last = await store.lastCursor();
      if (this.pollFailing) logger.info('webhooks: reading the event log works again');
      this.pollFailing = false;
      if (this.seen === undefined) {
        // Events stored between a worker's first read and this first look would otherwise wait for the next.
        this.seen = last;
        for (const worker of this.workers.values()) worker.wake();
        return;
      }
      if (last === this.seen) return;
      const sessions = await store.sessionsWithEventsAfter(this.seen);
      this.seen = last;
      for (const id of sessions) this.workers.get(id)?.wake();
    } catch (error) {
      if (!this.pollFailing) logger.warn({ err: error }, 'webhooks: could not read the event log; retrying');
      this.pollFailing = true;
    } finally {
      this.polling = false;
    }
  }
}

/** Posts one session's events in cursor order, each after the one before it was delivered or died. */
class SessionWorker {
  readonly finished: Promise<void>;
  private readonly dispatcher: WebhookDispatcher;
  private readonly sessionId: string;
  private readonly ownerId: string;
  private readonly logger: Logger;
  /** Ends waits and backoff sleeps: no new attempt starts. */
  private readonly stopping = new AbortController();
  /** Ends a POST in flight. */
  private readonly aborting = new AbortController();
  /** Set by wake(): new events may be there (checked before going idle, so no wake-up is lost). */
  private woken = true;
  private onWake: (() => void) | undefined;
  /** Set while stop({ drainMs }) waits for the worker to catch up: called when it has, or by a plain stop. */
  private endDrain: (() => void) | undefined;

  constructor(dispatcher: WebhookDispatcher, sessionId: string, ownerId: string, after: Promise<void> | undefined) {
    this.dispatcher = dispatcher;
    this.sessionId = sessionId;
    this.ownerId = ownerId;
    this.logger = dispatcher.deps.logger.child({ session: sessionId });
    this.finished = (after ?? Promise.resolve())
      .then(() => this.run())
      .catch((error: unknown) => {
        this.logger.error(
          { err: error },
          'webhook delivery failed unexpectedly; it resumes when the session is taken again',
        );
      });
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  wake(): void {
    this.woken = true;
    this.onWake?.();
  }

  async stop(options: { drainMs?: number } = {}): Promise<void> {
    const { clock, stopGraceMs = DEFAULT_STOP_GRACE_MS } = this.dispatcher.deps;
    if (this.endDrain) {
      this.endDrain(); // a plain stop (serve shutting down) cuts a drain short
    } else if (options.drainMs !== undefined && options.drainMs > 0 && !this.stopped) {
      const caughtUp = new Promise<void>((resolve) => (this.endDrain = resolve));
      this.wake(); // read once more: what was stored just now (the stop's own `state` event) is not seen yet
      await settleBy(caughtUp, clock.monotonic() + options.drainMs, clock);
      this.endDrain = undefined;
    }
    this.stopping.abort();
    this.onWake?.();
    if (await settleBy(this.finished, systemClock.monotonic() + stopGraceMs)) return;
    this.aborting.abort();
    await settleBy(this.finished, systemClock.monotonic() + stopGraceMs);
  }

  /** Resolves when woken or stopped; at once when woken meanwhile. */
  private idle(): Promise<void> {
    if (this.woken || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.onWake = () => {
        this.onWake = undefined;
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    const { store, clock } = this.dispatcher.deps;
    let position: WebhookPosition | undefined;
    let storeFailures = 0;
    while (!this.stopped) {
      try {
        position ??= (await store.webhookPosition(this.sessionId)) ?? emptyWebhookPosition(this.sessionId, '');
        this.woken = false;
        const events = await store.readEvents({ sessions: [this.sessionId], since: position.cursor, limit: BATCH });
        storeFailures = 0;
        if (events.length === 0) {
          this.endDrain?.();
          await this.idle();
          continue;
        }
        // Filtered-out events are passed over; the position moves past them with the next delivery, or
        // with one write for a batch that held nothing to post.
        let skipped: string | undefined;
        for (const event of events) {
          if (this.stopped) break;
          if (!this.dispatcher.wants(event)) {
            skipped = event.cursor;
            continue;
          }
          skipped = undefined;
          const after = await this.deliverOne(event, position);
          if (!after) return; // stopped mid-way: the next owner resumes from the stored position
          position = after;
        }
        if (skipped !== undefined && !this.stopped) position = await this.record(skipped, { result: 'skipped' });
      } catch (error) {
        if (isWaError(error) && error.code === 'E_LEASE_LOST') {
          // Another process owns the session now and posts from the stored position; the runner stops soon.
          this.logger.info('webhook delivery stopped: the lease is no longer ours');
          return;
        }
        if (this.stopped) return;
        const delay = backoffDelay(storeFailures++, STORE_RETRY);
        this.logger.warn({ err: error, retryInMs: delay }, 'webhook delivery could not use the database; retrying');
        position = undefined; // read it again: a write may have landed or not
        await clock.sleep(delay, this.stopping.signal);
      }
    }
  }

  private record(cursor: string, outcome: WebhookOutcome): Promise<WebhookPosition> {
    return this.dispatcher.deps.store.recordWebhookDelivery(this.sessionId, cursor, outcome, { fence: this.ownerId });
  }

  /**
   * Posts one event until it is delivered or dead; the position after, or undefined when stopped first.
   * Its earlier failures (this process's or a previous owner's) come from the stored position: the next
   * attempt waits for the stored time, and the age counts from the stored first failure.
   */
  private async deliverOne(event: StoredEvent, position: WebhookPosition): Promise<WebhookPosition | undefined> {
    const { clock, timing, metrics, random } = this.dispatcher.deps;
    const resumed = position.failingCursor === event.cursor;
    let attempts = resumed ? position.attempts : 0;
    let firstFailedAt = resumed ? position.firstFailedAt : null;
    let nextAt = resumed ? position.nextAt : null;
    const body = webhookBody(event);
    for (;;) {
      if (nextAt !== null && nextAt > clock.now()) {
        await clock.sleep(nextAt - clock.now(), this.stopping.signal);
      }
      if (this.stopped) return undefined;
      const attempt = await this.post(event.cursor, body);
      if ('aborted' in attempt) return undefined;
      if (attempt.ok) {
        metrics?.webhookDelivery('ok');
        this.logger.debug({ cursor: event.cursor, type: event.type, attempts: attempts + 1 }, 'webhook delivered');
        return this.record(event.cursor, { result: 'delivered' });
      }
      const now = clock.now();
      attempts++;
      firstFailedAt ??= now;
      // Dead only after an attempt failed past the max age: a process taking over after a long outage
      // tries once more before giving the event up.
      if (now - firstFailedAt >= timing.webhookMaxAgeMs) {
        metrics?.webhookDelivery('dead');
        this.logger.error(
          {
            cursor: event.cursor,
            type: event.type,
            attempts,
            error: attempt.error,
            firstFailedAt: new Date(firstFailedAt).toISOString(),
          },
          'webhook event dead: still failing after the max age; going on with the next (wa listen still has it)',
        );
        return this.record(event.cursor, { result: 'dead', error: attempt.error });
      }
      metrics?.webhookDelivery('failed');
      const delay = backoffDelay(
        attempts - 1,
        { baseMs: timing.webhookBaseMs, capMs: timing.webhookCapMs, resetAfterMs: 0 },
        random,
      );
      // The last attempt falls at the max age, not up to a cap's length after it.
      nextAt = Math.min(now + delay, firstFailedAt + timing.webhookMaxAgeMs);
      this.logger.warn(
        { cursor: event.cursor, type: event.type, attempts, error: attempt.error, retryInMs: nextAt - now },
        'webhook delivery failed; retrying',
      );
      await this.record(event.cursor, { result: 'failed', error: attempt.error, at: now, nextAt });
    }
  }

  /** One signed POST, signed anew for this attempt. A timeout is a failure like any other. */
  private async post(cursor: string, body: string): Promise<Attempt> {
    const { config, timing, clock } = this.dispatcher.deps;
    const timeout = AbortSignal.timeout(timing.webhookTimeoutMs);
    try {
      const response = await fetch(config.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'wa-webhooks',
          'X-Wa-Event-Id': cursor,
          'X-Wa-Signature': webhookSignature(config.secret, body, Math.floor(clock.now() / 1000)),
        },
        body,
        // A redirect is an answer other than 2xx: following it would re-send the event somewhere unconfigured.
        redirect: 'manual',
        signal: AbortSignal.any([timeout, this.aborting.signal]),
      });
      // The body is not ours to read (it may be large, or never end): drop it.
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return { ok: true };
      return { ok: false, error: `HTTP ${response.status}` };
    } catch (error) {
      if (this.aborting.signal.aborted) return { ok: false, aborted: true };
      if (timeout.aborted) return { ok: false, error: `no answer within ${timing.webhookTimeoutMs} ms` };
      return { ok: false, error: fetchFailure(error) };
    }
  }
}
