/**
 * Time as the daemon sees it: wall-clock timestamps, sleeps and periodic ticks behind one interface, so
 * the runner, the supervisor and the connect pacing can be driven by a scripted clock in tests instead of
 * waiting in real time (test/helpers/manual-clock.ts).
 */
export interface Clock {
  /** Epoch milliseconds (Date.now()). */
  now(): number;
  /**
   * Milliseconds on a clock that only moves forward (performance.now()): for measuring intervals such as
   * "time since the last lease renewal", which a wall-clock step (NTP, a suspended VM) must not distort.
   */
  monotonic(): number;
  /** Resolves after `ms`, or early (without error) when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  sleep,
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
};

/** Sleeps, or resolves early when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Waits for `work` until `deadlineAt` (on `clock.monotonic()`), whichever comes first: true when the work
 * settled in time. The work goes on in the background either way; a caller past its deadline (a daemon
 * told to stop while the database hangs) simply stops waiting for it.
 */
export async function settleBy(
  work: Promise<unknown>,
  deadlineAt: number,
  clock: Clock = systemClock,
): Promise<boolean> {
  const timeout = new AbortController();
  let settled = false;
  await Promise.race([
    work.then(
      () => void (settled = true),
      () => void (settled = true),
    ),
    clock.sleep(deadlineAt - clock.monotonic(), timeout.signal),
  ]);
  timeout.abort();
  return settled;
}
