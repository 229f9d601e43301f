/**
 * Reading the event log (README "Receiving messages"): `wa listen`, `GET /events` and the library's
 * `events()` all read stored events oldest first after a cursor (exclusive), page by page, and with
 * `follow` keep going as new ones are stored. The log is in the database, so a reader works beside any
 * owner on any host; waiting is a poll of `lastCursor()` (on SQLite one b-tree lookup), and events are
 * read only when it moved. The store's change hints (PostgreSQL LISTEN/NOTIFY, SQLite writes in this
 * process) cut the wait short.
 */
import type { ReadEventsOptions, SessionStore, StoredEvent } from '../store/types.js';

/** How often a follower looks for new events. */
export const FOLLOW_POLL_MS = 300;
/** Events read per query, so a long log is streamed rather than loaded whole. */
export const EVENT_PAGE = 500;
/** A cursor as events carry it: the store's cursors are positive 64-bit integers (SQLite rowid, PostgreSQL bigint); '0' means "from the start". */
export const CURSOR_PATTERN = /^(0|[1-9]\d{0,18})$/;

export interface EventFeedOptions {
  /** Only events after this cursor (exclusive); without it, from the oldest kept event. */
  since?: string | undefined;
  /** Only these sessions; all when absent or empty. */
  sessions?: readonly string[] | undefined;
  /** Keep waiting for new events after the stored ones (until `signal` fires). */
  follow?: boolean | undefined;
  signal?: AbortSignal | undefined;
  pollMs?: number | undefined;
  pageSize?: number | undefined;
}

/** An event as programs get it: see src/store/message-rows.ts. */
export { eventJson as toJson, type EventJson } from '../store/message-rows.js';

/** The events after `since`, oldest first; with `follow`, then every new one as it is stored, until `signal`. */
export async function* eventFeed(store: SessionStore, options: EventFeedOptions = {}): AsyncGenerator<StoredEvent> {
  const signal = options.signal ?? new AbortController().signal;
  const page = options.pageSize ?? EVENT_PAGE;
  let cursor = options.since;
  // Read before the stored events are drained: an event stored meanwhile moves it, so it is not missed.
  let seen = options.follow ? await store.lastCursor() : undefined;
  const hints = options.follow ? new ChangeHints(store, options.sessions) : undefined;
  try {
    for (;;) {
      for (;;) {
        const events = await store.readEvents({ since: cursor, sessions: options.sessions, limit: page });
        for (const event of events) {
          if (signal.aborted) return;
          cursor = event.cursor;
          yield event;
        }
        if (events.length < page) break;
      }
      if (!options.follow) return;
      for (;;) {
        if (signal.aborted) return;
        await hints!.sleep(options.pollMs ?? FOLLOW_POLL_MS, signal);
        if (signal.aborted) return;
        const last = await store.lastCursor();
        if (last !== seen) {
          seen = last;
          break;
        }
      }
    }
  } finally {
    hints?.stop();
  }
}

/**
 * Waits up to `waitMs` for events after `since` (`GET /events?wait=`): returns the stored ones at once when
 * there are any, otherwise the first that arrive, or none when the time is up or `signal` fires.
 */
export async function pollEvents(
  store: SessionStore,
  options: ReadEventsOptions & { waitMs: number; signal?: AbortSignal | undefined; pollMs?: number | undefined },
): Promise<StoredEvent[]> {
  const read = { since: options.since, sessions: options.sessions, limit: options.limit };
  let seen = await store.lastCursor();
  let events = await store.readEvents(read);
  if (events.length > 0 || options.waitMs <= 0) return events;
  const deadline = AbortSignal.timeout(options.waitMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const hints = new ChangeHints(store, options.sessions);
  try {
    while (!signal.aborted) {
      await hints.sleep(options.pollMs ?? FOLLOW_POLL_MS, signal);
      if (signal.aborted) break;
      const last = await store.lastCursor();
      if (last === seen) continue;
      seen = last;
      events = await store.readEvents(read);
      if (events.length > 0) return events;
    }
    return [];
  } finally {
    hints.stop();
  }
}

/** Sleeps that end early when the store hints that events were appended for one of `sessions` (or any). */
class ChangeHints {
  private wake: (() => void) | undefined;
  private pending = false;
  readonly stop: () => void;

  constructor(store: SessionStore, sessions: readonly string[] | undefined) {
    const wanted = sessions && sessions.length > 0 ? new Set(sessions) : undefined;
    this.stop = store.watchChanges((change) => {
      if (change.kind !== 'events' || (wanted && !wanted.has(change.session))) return;
      this.pending = true;
      this.wake?.();
    });
  }

  /** Resolves after `ms`, when `signal` fires, or when a hint came (also one that came since the last sleep). */
  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return;
    }
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
    this.pending = false;
  }
}
