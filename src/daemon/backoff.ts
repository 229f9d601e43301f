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

/**
 * A global limit on how many connects start per second, so a daemon with hundreds of sessions (or one
 * coming back after an outage) does not hit WhatsApp with all of them at once.
 */
export class ConnectLimiter {
  private next = 0;
  private readonly intervalMs: number;
  private readonly clock: Clock;

  constructor(perSecond: number, clock: Clock = systemClock) {
    this.intervalMs = 1000 / perSecond;
    this.clock = clock;
  }

  /** Resolves when this caller may connect; callers are spaced `1/perSecond` apart. */
  async take(signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    const at = Math.max(now, this.next);
    this.next = at + this.intervalMs;
    if (at > now) await this.clock.sleep(at - now, signal);
  }
}
