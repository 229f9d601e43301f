import { describe, expect, it } from 'vitest';
import { backoffDelay, ConnectLimiter, DEFAULT_BACKOFF } from '../../src/daemon/backoff.js';
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
