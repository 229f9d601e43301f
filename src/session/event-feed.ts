/**
 * Reading the event log (README "Receiving messages"): `wa listen`, `GET /events` and the library's
 * `events()` all read stored events oldest first after a cursor (exclusive), page by page, and with
 * `follow` keep going as new ones are stored. The log is in the database, so a reader works beside any
 * owner on any host; waiting is a poll of `lastCursor()` (on SQLite one b-tree lookup), and events are
 * read only when it moved, and the store's change hints (PostgreSQL LISTEN/NOTIFY, SQLite writes in this
 * process) cut the wait short. Many waiters in one process (the daemon's long-polls and message waits)
 * share one EventWatch: one `lastCursor()` a tick for all of them, and one read of what is new.
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
export { eventJson, type EventJson } from '../store/message-rows.js';

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

/** What waiting needs of a store: the log, and its change hints where it has them (fakes in tests may not). */
type WatchedStore = Pick<SessionStore, 'lastCursor' | 'readEvents'> & Partial<Pick<SessionStore, 'watchChanges'>>;

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
export async function pollEvents(store: WatchedStore, options: PollOptions): Promise<StoredEvent[]> {
  const read = { since: options.since, sessions: options.sessions, limit: options.limit };
  if (options.watch) return pollThrough(store, options.watch, read, options);
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
  private readonly store: WatchedStore;
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
  /** A hint came during a tick: tick again at once after it. */
  private hinted = false;
  private closed = false;
  private readonly unwatch: (() => void) | undefined;

  constructor(store: WatchedStore, options: { pollMs?: number | undefined; deltaLimit?: number | undefined } = {}) {
    this.store = store;
    this.pollMs = options.pollMs ?? WATCH_POLL_MS;
    this.deltaLimit = options.deltaLimit ?? WATCH_DELTA_LIMIT;
    // A change hint (an event appended here, or anywhere on PostgreSQL) brings the next tick forward.
    this.unwatch = store.watchChanges?.((change) => {
      if (change.kind === 'events') this.hurry();
    });
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
    this.unwatch?.();
    for (const watcher of [...this.waiting]) watcher.wake?.(undefined);
  }

  private schedule(delayMs = this.pollMs): void {
    if (this.timer !== undefined || this.ticking || this.waiting.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ticking = true;
      this.hinted = false;
      this.tick()
        .catch(() => undefined) // a failed read (the database away) is tried again next tick; waits end by their deadlines
        .finally(() => {
          this.ticking = false;
          this.schedule(this.hinted ? 0 : this.pollMs);
        });
    }, delayMs);
  }

  /** Ticks now rather than at the end of the interval (a change hint came). */
  private hurry(): void {
    if (this.waiting.size === 0) return;
    if (this.ticking) {
      this.hinted = true;
      return;
    }
    this.idle();
    this.schedule(0);
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

/** Sleeps that end early when the store hints that events were appended for one of `sessions` (or any). */
class ChangeHints {
  private wake: (() => void) | undefined;
  private pending = false;
  readonly stop: () => void;

  constructor(store: Partial<Pick<SessionStore, 'watchChanges'>>, sessions: readonly string[] | undefined) {
    const wanted = sessions && sessions.length > 0 ? new Set(sessions) : undefined;
    this.stop =
      store.watchChanges?.((change) => {
        if (change.kind !== 'events' || (wanted && !wanted.has(change.session))) return;
        this.pending = true;
        this.wake?.();
      }) ?? ((): void => undefined);
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
