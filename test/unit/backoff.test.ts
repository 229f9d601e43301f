import { describe, expect, it } from 'vitest';
import { backoffDelay, ConnectLimiter, DEFAULT_BACKOFF, pacingPolicy } from '../../src/daemon/backoff.js';
import type { Clock } from '../../src/clock.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('backoffDelay (full jitter)', () => {
  it('is uniform in [0, min(cap, base·2^attempt))', () => {
    const ceilings = [0, 1, 2, 3, 5, 6, 7, 40].map((attempt) => backoffDelay(attempt, DEFAULT_BACKOFF, () => 0.999999));
    expect(ceilings).toEqual([999, 1999, 3999, 7999, 31_999, 59_999, 59_999, 59_999]);
    expect(backoffDelay(4, DEFAULT_BACKOFF, () => 0)).toBe(0);
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0.5)).toBe(4000);
  });
});

describe('ConnectLimiter', () => {
  it('spaces callers 1/perSecond apart and lets an aborted caller go at once', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(5, clock);
    const started = clock.now();
    const at: number[] = [];
    const takes = [0, 1, 2, 3].map(() => limiter.take().then(() => at.push(clock.now() - started)));
    await clock.advance(1000);
    await Promise.all(takes);
    expect(at).toEqual([0, 200, 400, 600]);

    const abort = new AbortController();
    let done = false;
    void limiter.take(abort.signal).then(() => (done = true));
    void limiter.take(abort.signal).then(() => (done = true));
    abort.abort();
    await clock.advance(0);
    expect(done).toBe(true);
  });
});

describe('ConnectLimiter: adaptive pacing (start 5/s, cap 50/s)', () => {
  /**
   * Queues `callers` connects and runs the clock for `ms`; `outcome` is told of each release (the test
   * plays the server: open, fail, or 429). Returns the release times, relative to the start.
   */
  const run = async (
    limiter: ConnectLimiter,
    clock: ManualClock,
    callers: number,
    ms: number,
    outcome: (index: number, at: number) => void,
  ): Promise<number[]> => {
    const started = clock.now();
    const at: number[] = [];
    for (let i = 0; i < callers; i++) {
      void limiter.take().then(() => {
        at.push(clock.now() - started);
        outcome(at.length - 1, clock.now() - started);
      });
    }
    for (let t = 0; t < ms; t += 10) await clock.advance(10);
    return at;
  };
  /** Releases per whole second: [0 s, 1 s), [1 s, 2 s), … */
  const perSecond = (at: number[], seconds: number): number[] =>
    Array.from({ length: seconds }, (_, s) => at.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length);

  it('ramps up while connects succeed (doubling each second), never above the cap', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    const at = await run(limiter, clock, 400, 8000, () => limiter.opened());
    const counts = perSecond(at, 8);
    expect(counts.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(counts.slice(5)).toEqual([50, 50, 50]);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(20); // 1/50 s
    // 100 healthy sessions: all released within 5 s (5 + 10 + 20 + 40 by 4 s, then 50/s), against 19.8 s at the old fixed 5/s.
    expect(at[99]!).toBeLessThan(5000);
    expect(limiter.perSecond).toBe(50);
  });

  it('falls back to the start rate the moment a connect fails, then ramps again on successes', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    const at = await run(limiter, clock, 400, 6000, (i, t) => {
      if (t >= 3000 && t < 3010)
        limiter.failed(); // the server drops us once, 3 s in
      else limiter.opened();
    });
    expect(perSecond(at, 3)).toEqual([5, 10, 20]);
    const afterFailure = at.filter((t) => t > 3000);
    // The release right after the failure is paced at 1/5 s already: no burst at the old rate.
    expect(afterFailure[0]! - 3000).toBeLessThanOrEqual(200);
    expect(afterFailure[1]! - afterFailure[0]!).toBe(200);
    expect(at.filter((t) => t > 3000 && t < 4000)).toHaveLength(5);
    expect(perSecond(at, 6)[4]).toBeGreaterThan(5); // ramping again
  });

  it('a server that fails every connect never sees more than the old fixed 5/s', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    const at = await run(limiter, clock, 400, 10_000, () => limiter.failed());
    expect(at.length).toBeLessThanOrEqual(51); // t = 0, 0.2, …, 10 s: what the fixed 5/s let through
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBe(200);
    expect(limiter.perSecond).toBe(5);
  });

  it('a server failing now and then keeps it from ramping past what the successes in between earn', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    // Every third connect fails: no second passes without a failure, so the rate never leaves 5/s.
    const at = await run(limiter, clock, 400, 10_000, (i) => (i % 3 === 2 ? limiter.failed() : limiter.opened()));
    expect(at.length).toBeLessThanOrEqual(51);
  });

  it('after a 429 paces every session at 1/s for at least a minute, successes or not, then ramps again', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    const at = await run(limiter, clock, 400, 63_000, (i) => (i === 6 ? limiter.rateLimited() : limiter.opened()));
    const limitedAt = at[6]!;
    const during = at.filter((t) => t > limitedAt && t <= limitedAt + 60_000);
    expect(during.length).toBeLessThanOrEqual(61);
    for (let i = 8; i < at.length && at[i]! <= limitedAt + 60_000; i++) expect(at[i]! - at[i - 1]!).toBe(1000);
    expect(at.filter((t) => t > limitedAt + 61_000).length).toBeGreaterThan(2); // ramping again after the hold
  });

  it('capacity: what one discovery round may take, with the ramp, the cap and a 429 hold', () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    expect(limiter.capacity(5000)).toBe(5 + 10 + 20 + 40 + 50);
    expect(limiter.capacity(1000)).toBe(5);
    limiter.rateLimited();
    expect(limiter.capacity(5000)).toBe(5);
    expect(new ConnectLimiter(5, clock).capacity(5000)).toBe(25); // a fixed rate: the old rule
  });

  it('keeps its rate when the event loop fires its timers late (catching up, at most 100 ms of schedule)', async () => {
    const clock = new ManualClock();
    // Every sleep ends 30 ms late, as on a loop busy with handshakes.
    const late: Clock = {
      now: () => clock.now(),
      monotonic: () => clock.monotonic(),
      every: (ms, fn) => clock.every(ms, fn),
      sleep: (ms, signal) => clock.sleep(ms + 30, signal),
    };
    const limiter = new ConnectLimiter(50, late);
    const at = await run(limiter, clock, 400, 2000, () => undefined);
    // One release per wake-up would be 1000 / (20 + 30) = 20/s; the schedule says 50/s.
    expect(at.filter((t) => t < 2000).length).toBeGreaterThanOrEqual(95);
    expect(at.filter((t) => t < 2000).length).toBeLessThanOrEqual(101);
  });

  it('an aborted caller leaves the queue and no timer behind', async () => {
    const clock = new ManualClock();
    const limiter = new ConnectLimiter(pacingPolicy(5, 50), clock);
    await limiter.take();
    const abort = new AbortController();
    const waiting = [limiter.take(abort.signal), limiter.take(abort.signal)];
    await clock.advance(0);
    expect(clock.pending).toBe(1);
    abort.abort();
    await Promise.all(waiting);
    await clock.advance(0);
    expect(clock.pending).toBe(0);
  });
});
