import { describe, expect, it } from 'vitest';
import { settleBy } from '../../src/clock.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('settleBy: the shutdown deadline of wa serve', () => {
  it('stops waiting at the deadline for work that never settles (a hanging database)', async () => {
    const clock = new ManualClock();
    let result: boolean | undefined;
    void settleBy(new Promise(() => undefined), clock.monotonic() + 8_000, clock).then((r) => (result = r));
    await clock.advance(7_999);
    expect(result).toBeUndefined();
    await clock.advance(1);
    expect(result).toBe(false);
  });

  it('returns as soon as the work settles (a failure included), leaving no timer behind', async () => {
    const clock = new ManualClock();
    expect(await settleBy(Promise.resolve(), clock.monotonic() + 8_000, clock)).toBe(true);
    expect(await settleBy(Promise.reject(new Error('pool ended')), clock.monotonic() + 8_000, clock)).toBe(true);
    expect(clock.pending).toBe(0);
  });
});
