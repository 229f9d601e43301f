import type { Clock } from '../../src/clock.js';

interface Timer {
  at: number;
  fn: () => void;
  every?: number;
  cancelled: boolean;
}

/** Lets pending promise chains run (store writes, awaits) between scripted steps. */
export async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that moves only when told: `advance(ms)` fires every sleep and tick that falls due, in time
 * order, letting promise chains settle after each. The daemon's timing logic runs without real waiting.
 */
export class ManualClock implements Clock {
  private time: number;
  private readonly origin: number;
  private timers: Timer[] = [];

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.time = start;
    this.origin = start - 1000;
  }

  now(): number {
    return this.time;
  }

  /** Moves with `advance` like now(), from its own origin (a monotonic clock has no epoch). */
  monotonic(): number {
    return this.time - this.origin;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = this.add(ms, () => resolve());
      signal?.addEventListener(
        'abort',
        () => {
          timer.cancelled = true;
          resolve();
        },
        { once: true },
      );
    });
  }

  every(ms: number, fn: () => void): () => void {
    const timer = this.add(ms, fn, ms);
    return () => void (timer.cancelled = true);
  }

  /** Pending sleeps and ticks (for leak checks: a stopped runner leaves none). */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    await flush();
    for (;;) {
      const next = this.timers.filter((t) => !t.cancelled && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.time = Math.max(this.time, next.at);
      if (next.every) next.at += next.every;
      else next.cancelled = true;
      next.fn();
      await flush();
    }
    this.time = until;
    this.timers = this.timers.filter((t) => !t.cancelled);
    await flush();
  }

  private add(ms: number, fn: () => void, every?: number): Timer {
    const timer: Timer = { at: this.time + Math.max(0, ms), fn, cancelled: false, ...(every ? { every } : {}) };
    this.timers.push(timer);
    return timer;
  }
}
