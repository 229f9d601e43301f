/**
 * Reading the event log (README "Receiving messages"): `wa listen`, `GET /events` and the library's
 * `events()` all read stored events oldest first after a cursor (exclusive), page by page, and with
 * `follow` keep going as new ones are stored. The log is in the database, so a reader works beside any
 * owner on any host; waiting is a poll of `lastCursor()` (on SQLite one b-tree lookup), and events are
 * read only when it moved. Many waiters in one process (the daemon's long-polls and message waits) share
 * one EventWatch: one `lastCursor()` a tick for all of them, and one read of what is new.
 */
import type { ReadEventsOptions, SessionStore, StoredEvent } from '../store/types.js';
import { abortableSleep } from './message-wait.js';

/** How often a follower looks for new events. */
export const FOLLOW_POLL_MS = 300;
/** Events read per query, so a long log is streamed rather than loaded whole. */
export const EVENT_PAGE = 500;

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

/** The events after `since`, oldest first; with `follow`, then every new one as it is stored, until `signal`. */
export async function* eventFeed(store: SessionStore, options: EventFeedOptions = {}): AsyncGenerator<StoredEvent> {
  const signal = options.signal ?? new AbortController().signal;
  const page = options.pageSize ?? EVENT_PAGE;
  let cursor = options.since;
  // Read before the stored events are drained: an event stored meanwhile moves it, so it is not missed.
  let seen = options.follow ? await store.lastCursor() : undefined;
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
      await abortableSleep(options.pollMs ?? FOLLOW_POLL_MS, signal);
      if (signal.aborted) return;
      const last = await store.lastCursor();
      if (last !== seen) {
        seen = last;
        break;
      }
    }
  }
}

/**
 * An event in its documented JSON shape (README "Receiving messages"), as `wa listen --json` prints it and
 * `GET /events` returns it: a message's raw WAMessage as JSON, not as a string holding JSON.
 */
export function eventJson(event: StoredEvent): Record<string, unknown> {
  if (event.type !== 'message') return { ...event };
  return { ...event, raw: JSON.parse(event.raw) as unknown };
}

/** Cursors are decimal strings of any length: compared as numbers, not as text ("10" > "9"). */
export const cursorAfter = (cursor: string, since: string | undefined): boolean =>
  since === undefined || BigInt(cursor) > BigInt(since);

export interface PollOptions extends ReadEventsOptions {
  waitMs: number;
  signal?: AbortSignal | undefined;
  pollMs?: number | undefined;
  /** Wait through this shared watch instead of polling `lastCursor()` alone (src/daemon/http-messages.ts). */
  watch?: EventWatch | undefined;
}

/**
 * Waits up to `waitMs` for events after `since` (`GET /events?wait=`): returns the stored ones at once when
 * there are any, otherwise the first that arrive, or none when the time is up or `signal` fires.
 */
export async function pollEvents(
  store: Pick<SessionStore, 'lastCursor' | 'readEvents'>,
  options: PollOptions,
): Promise<StoredEvent[]> {
  const read = { since: options.since, sessions: options.sessions, limit: options.limit };
  if (options.watch) return pollThrough(store, options.watch, read, options);
  let seen = await store.lastCursor();
  let events = await store.readEvents(read);
  if (events.length > 0 || options.waitMs <= 0) return events;
  const deadline = AbortSignal.timeout(options.waitMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  while (!signal.aborted) {
    await abortableSleep(options.pollMs ?? FOLLOW_POLL_MS, signal);
    if (signal.aborted) break;
    const last = await store.lastCursor();
    if (last === seen) continue;
    seen = last;
    events = await store.readEvents(read);
    if (events.length > 0) return events;
  }
  return [];
}

async function pollThrough(
  store: Pick<SessionStore, 'readEvents'>,
  watch: EventWatch,
  read: ReadEventsOptions,
  options: PollOptions,
): Promise<StoredEvent[]> {
  const wanted = options.sessions && options.sessions.length > 0 ? new Set(options.sessions) : undefined;
  // Watching starts before the first read, so an event stored during that read is not missed.
  const watcher = watch.watch(
    options.sessions,
    (event) => (wanted === undefined || wanted.has(event.session)) && cursorAfter(event.cursor, read.since),
  );
  try {
    const events = await store.readEvents(read);
    if (events.length > 0 || options.waitMs <= 0) return events;
    const deadline = AbortSignal.timeout(options.waitMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    for (;;) {
      const next = await watcher.next(signal);
      if (next === undefined) return [];
      const found = next === 'reread' ? await store.readEvents(read) : next.slice(0, read.limit);
      if (found.length > 0) return found;
    }
  } finally {
    watcher.close();
  }
}

/** How often a shared watch looks at the log while anybody waits: one cheap read a tick, whoever waits. */
export const WATCH_POLL_MS = 250;
/** What a tick reads of the new events at most; a waiter whose events lie beyond reads them itself. */
const WATCH_DELTA_LIMIT = 1000;

/** What a tick hands a waiting watcher: the new events it matches, or 'reread' when it must look itself. */
export type WatchResult = StoredEvent[] | 'reread';

interface Watcher {
  /** The log's cursor up to which this watcher has been told everything it matches. */
  seen: string | undefined;
  /** The sessions its events come from; undefined: any. */
  sessions: ReadonlySet<string> | undefined;
  match: (event: StoredEvent) => boolean;
  /** Set while the watcher waits in next(). */
  wake: ((result: WatchResult | undefined) => void) | undefined;
}

/** One waiter of an EventWatch (see EventWatch.watch). */
export interface EventWatcher {
  /**
   * Resolves at the next tick that brings events this watcher matches (those events), or at a tick that
   * cannot tell (it started watching before the tick before, or too much arrived at once): 'reread',
   * read yourself. Undefined when `signal` fired first.
   */
  next(signal: AbortSignal): Promise<WatchResult | undefined>;
  close(): void;
}

/**
 * One watch of the event log shared by every waiter of a process: while anybody waits, each tick reads
 * `lastCursor()` once, and when it moved, the new events once (only the sessions waited on), and hands
 * each waiter the ones it matches. So 200 waiting long-polls cost one query a tick, not 200, and hold no
 * database connection between ticks. It relies on the log's order: cursors become visible in increasing
 * order (SQLite has one writer; PostgreSQL serializes appends, see EVENT_APPEND_LOCK in
 * src/store/postgres.ts), so "after the cursor of the last tick" is exactly what is new.
 */
export class EventWatch {
  private readonly store: Pick<SessionStore, 'lastCursor' | 'readEvents'>;
  private readonly pollMs: number;
  private readonly deltaLimit: number;
  private readonly waiting = new Set<Watcher>();
  /**
   * The cursor the last tick read (undefined before the first). Kept while nobody waits: a watcher that
   * starts from an old value costs its first tick one larger read of what is new, where starting from
   * nothing would cost every watcher a read of its own.
   */
  private last: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;

  constructor(
    store: Pick<SessionStore, 'lastCursor' | 'readEvents'>,
    options: { pollMs?: number | undefined; deltaLimit?: number | undefined } = {},
  ) {
    this.store = store;
    this.pollMs = options.pollMs ?? WATCH_POLL_MS;
    this.deltaLimit = options.deltaLimit ?? WATCH_DELTA_LIMIT;
  }

  /** How many waiters wait now (tests, metrics). */
  get waiters(): number {
    return this.waiting.size;
  }

  /**
   * Starts watching for events of `sessions` (all when empty) that `match`. Call it before your own read
   * of the log or of a row: what that read missed, a later tick tells.
   */
  watch(sessions: readonly string[] | undefined, match: (event: StoredEvent) => boolean): EventWatcher {
    const watcher: Watcher = {
      seen: this.last,
      sessions: sessions && sessions.length > 0 ? new Set(sessions) : undefined,
      match,
      wake: undefined,
    };
    return {
      next: (signal) =>
        new Promise((resolve) => {
          if (signal.aborted || this.closed) return resolve(undefined);
          const done = (result: WatchResult | undefined): void => {
            signal.removeEventListener('abort', onAbort);
            this.waiting.delete(watcher);
            watcher.wake = undefined;
            if (this.waiting.size === 0) this.idle();
            resolve(result);
          };
          const onAbort = (): void => done(undefined);
          signal.addEventListener('abort', onAbort, { once: true });
          watcher.wake = done;
          this.waiting.add(watcher);
          this.schedule();
        }),
      close: () => {
        watcher.wake?.(undefined);
      },
    };
  }

  /** Ends every wait (its caller sees an abort) and takes no new ones: the daemon is stopping. */
  close(): void {
    this.closed = true;
    for (const watcher of [...this.waiting]) watcher.wake?.(undefined);
  }

  private schedule(): void {
    if (this.timer !== undefined || this.ticking || this.waiting.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ticking = true;
      this.tick()
        .catch(() => undefined) // a failed read (the database away) is tried again next tick; waits end by their deadlines
        .finally(() => {
          this.ticking = false;
          this.schedule();
        });
    }, this.pollMs);
  }

  private idle(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    const cursor = await this.store.lastCursor();
    const watchers = [...this.waiting];
    const before = this.last;
    this.last = cursor;
    // Those that saw everything up to the previous tick are told from one read of what is new.
    const current = watchers.filter((w) => w.seen === before && before !== undefined && cursor !== before);
    let delta: StoredEvent[] | undefined;
    if (current.length > 0) {
      const sessions = current.some((w) => w.sessions === undefined)
        ? undefined
        : [...new Set(current.flatMap((w) => [...w.sessions!]))];
      delta = await this.store.readEvents({ since: before, sessions, limit: this.deltaLimit });
    }
    const complete = delta !== undefined && delta.length < this.deltaLimit;
    for (const watcher of watchers) {
      if (watcher.seen === cursor) continue; // nothing new since it last looked
      if (delta && watcher.seen === before) {
        const matched = delta.filter(
          (e) => (watcher.sessions === undefined || watcher.sessions.has(e.session)) && watcher.match(e),
        );
        watcher.seen = cursor;
        if (matched.length > 0) watcher.wake?.(matched);
        else if (!complete) watcher.wake?.('reread');
        continue;
      }
      // It started watching before the previous tick's value was known: it cannot be told from the
      // delta, so it reads for itself, once; from then on it is current.
      watcher.seen = cursor;
      watcher.wake?.('reread');
    }
  }
}
