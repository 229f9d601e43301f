import { systemClock, type Clock } from '../clock.js';

/** Reconnect delays: exponential backoff with full jitter (README "The daemon": base 1 s, cap 60 s, reset after 60 s open). */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
  /** A connection that stayed open this long resets the attempt count. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000 };

/**
 * The delay before reconnect attempt `attempt` (0-based): uniformly random in [0, min(cap, base·2^attempt)).
 * Full jitter keeps many sessions (and many daemons) from retrying in step after a shared outage.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** How the connect pacing adapts (README "The daemon": a few connects a second to start, ramping while they succeed). */
export interface PacingPolicy {
  /** The rate it starts at and falls back to on any failure: the fixed rate wa used before it adapted. */
  startPerSecond: number;
  /** The ceiling of the ramp. */
  maxPerSecond: number;
  /** After a 429 (rate-overlimit): the rate for every session, held at least `rateLimitHoldMs` before any ramp. */
  rateLimitedPerSecond: number;
  rateLimitHoldMs: number;
  /** How long the rate holds before it may double again (with successes and no failure meanwhile). */
  stepMs: number;
}

/** 5/s to start (the old fixed rate, so a failing server sees no more than before), up to 50/s, 1/s for a minute after a 429. */
export function pacingPolicy(startPerSecond: number, maxPerSecond = Math.max(startPerSecond, 50)): PacingPolicy {
  return {
    startPerSecond,
    maxPerSecond: Math.max(startPerSecond, maxPerSecond),
    rateLimitedPerSecond: Math.min(startPerSecond, 1),
    rateLimitHoldMs: 60_000,
    stepMs: 1000,
  };
}

/**
 * How far behind schedule the pacing may catch up. A busy event loop (a hundred handshakes at once) fires
 * the pacing's short timers late; releasing one caller per wake-up would then quietly halve the rate
 * (bench:serve measured ~20/s at a nominal 40). Releases due during a late wake-up go together, but never
 * more than this much of the schedule at once, and never after an idle spell.
 */
const MAX_CATCH_UP_MS = 100;

interface Waiter {
  resolve: () => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/**
 * A global pace for connects, so a daemon with hundreds of sessions (or one coming back after an outage)
 * does not hit WhatsApp with all of them at once, yet opens healthy ones about as fast as bare Baileys.
 * Callers queue; one is let through every 1/rate seconds, the rate read at each release (not when the
 * caller queued), so a ramp speeds up callers already waiting. The rate doubles every `stepMs` in which
 * connections opened and none failed, up to the cap; any failure drops it at once to the start rate, and
 * a 429 to the rate-limited one, held for at least a minute. A server that fails every connect therefore
 * never sees more than the start rate: the old fixed 5/s.
 */
export class ConnectLimiter {
  private readonly policy: PacingPolicy;
  private readonly clock: Clock;
  private rate: number;
  /** When the rate last changed (monotonic), and what happened since. */
  private changedAt: number;
  private opensSinceChange = 0;
  private failuresSinceChange = 0;
  private holdUntil = -Infinity;
  /** Monotonic time the next caller may go. */
  private next = -Infinity;
  private readonly queue: Waiter[] = [];
  private pumping = false;
  private idle: AbortController | undefined;

  constructor(policy: PacingPolicy | number, clock: Clock = systemClock) {
    this.policy = typeof policy === 'number' ? pacingPolicy(policy, policy) : policy;
    this.clock = clock;
    this.rate = this.policy.startPerSecond;
    this.changedAt = clock.monotonic();
  }

  /** The rate the next release is paced at, connects per second. */
  get perSecond(): number {
    this.maybeRamp();
    return this.rate;
  }

  /**
   * How many connects it could release within `ms` from now if every one succeeded (the ramp doubling each
   * step up to the cap): what discovery may take in one round.
   */
  capacity(ms: number): number {
    const { stepMs, maxPerSecond } = this.policy;
    const held = this.clock.monotonic() < this.holdUntil;
    let rate = this.perSecond;
    let total = 0;
    for (let t = 0; t < ms; t += stepMs) {
      total += (rate * Math.min(stepMs, ms - t)) / 1000;
      if (!held) rate = Math.min(maxPerSecond, rate * 2);
    }
    return Math.ceil(total);
  }

  /** Resolves when this caller may connect (at once when the signal aborts). */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        signal,
        onAbort: () => {
          const index = this.queue.indexOf(waiter);
          if (index >= 0) this.queue.splice(index, 1);
          if (this.queue.length === 0) this.idle?.abort(); // no sleeping timer left behind
          resolve();
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
      void this.pump();
    });
  }

  /** A connection opened. */
  opened(): void {
    this.opensSinceChange++;
  }

  /** A connect failed, or an open connection was dropped by the server: back to the start rate at once. */
  failed(): void {
    this.failuresSinceChange++;
    if (this.rate > this.policy.startPerSecond) this.setRate(this.policy.startPerSecond);
  }

  /** WhatsApp answered 429 (rate-overlimit): slow every session down, and hold that for a while. */
  rateLimited(): void {
    this.failuresSinceChange++;
    this.setRate(Math.min(this.rate, this.policy.rateLimitedPerSecond));
    this.holdUntil = this.clock.monotonic() + this.policy.rateLimitHoldMs;
  }

  private setRate(rate: number): void {
    this.rate = rate;
    this.changedAt = this.clock.monotonic();
    this.opensSinceChange = 0;
    this.failuresSinceChange = 0;
  }

  private maybeRamp(): void {
    const now = this.clock.monotonic();
    if (this.rate >= this.policy.maxPerSecond || now < this.holdUntil) return;
    if (now - this.changedAt < this.policy.stepMs) return;
    if (this.failuresSinceChange > 0) {
      // A failure at the start rate: stay there, and judge the next step afresh.
      this.setRate(this.rate);
      return;
    }
    if (this.opensSinceChange === 0) return;
    this.setRate(Math.min(this.policy.maxPerSecond, this.rate * 2));
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    // After an idle spell the schedule restarts now: no burst for the time nobody was waiting.
    this.next = Math.max(this.next, this.clock.monotonic());
    try {
      while (this.queue.length > 0) {
        const now = this.clock.monotonic();
        if (this.next > now) {
          this.idle = new AbortController();
          await this.clock.sleep(this.next - now, this.idle.signal);
          continue;
        }
        const waiter = this.queue.shift()!;
        waiter.signal?.removeEventListener('abort', waiter.onAbort);
        this.next = Math.max(this.next, now - MAX_CATCH_UP_MS) + 1000 / this.perSecond;
        waiter.resolve();
      }
    } finally {
      this.pumping = false;
      this.idle = undefined;
    }
  }
}
