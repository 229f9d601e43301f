/**
 * Message retention (README "Receiving messages": messages and events older than WA_KEEP_DAYS are pruned by
 * `wa serve`; nothing younger is). Once at start, then every interval; one prune at a time.
 */
import type { Logger } from 'pino';
import type { SessionStore } from '../store/types.js';

export const PRUNE_INTERVAL_MS = 60 * 60_000;

export interface Retention {
  /** Stops the timer and waits for a prune under way. */
  stop(): Promise<void>;
  /** The prune started at start-up (tests and serve's start-up await it). */
  readonly first: Promise<void>;
}

export function startRetention(
  store: SessionStore,
  keepDays: number,
  logger: Logger,
  intervalMs = PRUNE_INTERVAL_MS,
): Retention {
  let running: Promise<void> = Promise.resolve();
  const prune = (): Promise<void> => {
    running = running.then(async () => {
      try {
        const pruned = await store.pruneMessages(keepDays * 86_400_000);
        if (pruned.messages + pruned.events > 0) logger.info({ ...pruned, keepDays }, 'pruned old messages and events');
      } catch (error) {
        logger.warn({ err: error }, 'could not prune old messages; will try again');
      }
    });
    return running;
  };
  const first = prune();
  const timer = setInterval(() => void prune(), intervalMs);
  timer.unref();
  return {
    first,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
