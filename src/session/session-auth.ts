import type { AuthenticationState } from '@whiskeysockets/baileys';
import { useStoreAuthState } from '../auth/auth-state.js';
import { systemClock, type Clock } from '../clock.js';
import { isWaError, storageError } from '../errors.js';
import type { SessionStore } from '../store/types.js';

export interface SessionAuthOptions {
  /**
   * Keep creds in memory until the phone has accepted the pairing (`creds.account` is set). Baileys
   * writes `creds.me` for a pairing-code request before anything is confirmed; stored, such creds make
   * the next start log in as a device that does not exist (401), so an abandoned pairing must leave nothing.
   */
  deferCredsUntilPaired: boolean;
  /**
   * The lease owner id of this process: every write commits only while it holds the session's live lease
   * (src/store/types.ts WriteOptions). A write refused for that (E_LEASE_LOST) tells `onLeaseLost`.
   */
  fence?: string | undefined;
  /**
   * Retry a failed creds write on its own, after `baseMs` doubling to `capMs`, with the newest creds (the
   * daemon: a creds write Baileys fires once and forgets must not be lost to one busy moment).
   */
  retryCreds?: { baseMs: number; capMs: number; clock?: Clock } | undefined;
}

export interface WriteStats {
  commits: number;
  failures: number;
  /** Milliseconds of each commit, for the daemon's latency metric. */
  onCommit?: (ms: number, ok: boolean) => void;
}

/**
 * A session's auth state as a connection uses it: every write is counted while in flight so a graceful
 * close can wait for pending key writes (the first login commits 812 pre-keys), and writes that arrive
 * after close (Baileys flushes some on its way down) are dropped instead of failing against a closed store.
 */
export class SessionAuth {
  readonly state: AuthenticationState;
  readonly stats: WriteStats = { commits: 0, failures: 0 };
  private inFlight = new Set<Promise<unknown>>();
  private lastWriteAt = 0;
  private closed = false;
  private credsPending = false;
  private readonly deferCreds: boolean;
  private readonly persistCreds: () => Promise<void>;
  private leaseLostListeners: Array<() => void> = [];
  /** Set once a fenced write was refused: another process owns the session now. */
  leaseLost = false;
  /** Whether the newest creds write failed (and no later one succeeded): the stored creds are behind. */
  credsWriteFailed = false;
  private credsError: unknown;
  private credsRetries = 0;
  private readonly retryCreds: SessionAuthOptions['retryCreds'];
  private readonly stopRetry = new AbortController();
  /** Where the session lives: sockets store what they receive there too (src/session/capture.ts). */
  readonly store: SessionStore;
  readonly sessionId: string;
  /** The lease owner id its writes are fenced by; the outbox sender claims messages under it too. */
  readonly fence: string | undefined;

  private constructor(
    state: AuthenticationState,
    saveCreds: () => Promise<void>,
    options: SessionAuthOptions,
    store: SessionStore,
    sessionId: string,
  ) {
    this.store = store;
    this.sessionId = sessionId;
    this.fence = options.fence;
    this.deferCreds = options.deferCredsUntilPaired;
    this.retryCreds = options.retryCreds;
    this.persistCreds = saveCreds;
    const keys = state.keys;
    this.state = {
      creds: state.creds,
      keys: {
        get: (type, ids) => keys.get(type, ids),
        set: (data) => (this.closed ? Promise.resolve() : this.track(Promise.resolve(keys.set(data)))),
      },
    };
  }

  static async open(store: SessionStore, sessionId: string, options: SessionAuthOptions): Promise<SessionAuth> {
    const { state, saveCreds } = await useStoreAuthState(store, sessionId, { fence: options.fence });
    return new SessionAuth(state, saveCreds, options, store, sessionId);
  }

  /**
   * Auth whose creds are held in memory only, for a throwaway identity (`wa doctor`'s handshake): they are
   * never saved and the key store is empty; `store` only receives what the socket captures.
   */
  static inMemory(creds: AuthenticationState['creds'], store: SessionStore, sessionId: string): SessionAuth {
    const keys: AuthenticationState['keys'] = { get: () => Promise.resolve({}), set: () => Promise.resolve() };
    return new SessionAuth({ creds, keys }, () => Promise.resolve(), { deferCredsUntilPaired: true }, store, sessionId);
  }

  /** Called once, when a fenced write is refused because the lease is gone (taken over, or expired and taken). */
  onLeaseLost(listener: () => void): void {
    if (this.leaseLost) listener();
    else this.leaseLostListeners.push(listener);
  }

  get paired(): boolean {
    return Boolean(this.state.creds.account);
  }

  /** The `creds.update` handler: saves the whole creds, or defers while an unconfirmed pairing is under way. */
  saveCreds = (): Promise<void> => {
    if (this.closed) return Promise.resolve();
    if (this.deferCreds && !this.paired) {
      this.credsPending = true;
      return Promise.resolve();
    }
    this.credsPending = false;
    const write = this.track(this.persistCreds());
    write.then(
      () => {
        this.credsWriteFailed = false;
        this.credsRetries = 0;
      },
      (error: unknown) => {
        this.credsWriteFailed = true;
        this.credsError = error;
        this.scheduleCredsRetry();
      },
    );
    return write;
  };

  /** Retries the newest creds after backoff, if retrying is on and nothing makes it pointless. */
  private scheduleCredsRetry(): void {
    const retry = this.retryCreds;
    if (!retry || this.closed || this.leaseLost) return;
    const delay = Math.min(retry.capMs, retry.baseMs * 2 ** Math.min(this.credsRetries++, 20));
    const clock = retry.clock ?? systemClock;
    void clock.sleep(delay, this.stopRetry.signal).then(() => {
      if (this.closed || this.leaseLost || !this.credsWriteFailed) return;
      this.saveCreds().catch(() => undefined); // a failure schedules the next retry
    });
  }

  /**
   * For a command that must not report success without stored creds (`wa connect`): when the newest creds
   * write failed, writes them again, up to `attempts` times `waitMs` apart. Throws E_CREDS_NOT_STORED
   * (exit 5) when they still could not be stored.
   */
  async ensureCredsStored(attempts = 3, waitMs = 500): Promise<void> {
    for (let i = 0; i < attempts && this.credsWriteFailed && !this.leaseLost; i++) {
      await sleep(waitMs * 2 ** i);
      await this.saveCreds().catch(() => undefined);
    }
    if (this.credsWriteFailed) {
      const message = this.credsError instanceof Error ? this.credsError.message : String(this.credsError);
      throw storageError('E_CREDS_NOT_STORED', `the session's credentials could not be stored: ${message}`, {
        cause: this.credsError,
      });
    }
  }

  /** Whether creds changed in memory but were deliberately not stored (an unconfirmed pairing). */
  get hasDeferredCreds(): boolean {
    return this.credsPending;
  }

  private track(write: Promise<unknown>): Promise<void> {
    const started = performance.now();
    const done = write.then(
      () => {
        this.stats.commits++;
        this.stats.onCommit?.(performance.now() - started, true);
      },
      (error: unknown) => {
        this.stats.failures++;
        this.stats.onCommit?.(performance.now() - started, false);
        if (isWaError(error) && error.code === 'E_LEASE_LOST' && !this.leaseLost) {
          this.leaseLost = true;
          for (const listener of this.leaseLostListeners.splice(0)) listener();
        }
        throw error;
      },
    );
    this.inFlight.add(done);
    this.lastWriteAt = Date.now();
    const forget = (): void => {
      this.inFlight.delete(done);
      this.lastWriteAt = Date.now();
    };
    done.then(forget, forget);
    return done;
  }

  /** Resolves once no write is in flight and none started for `quietMs`, or after `maxMs` at most. */
  async settle(quietMs: number, maxMs: number): Promise<void> {
    const deadline = Date.now() + maxMs;
    while (Date.now() < deadline) {
      if (this.inFlight.size > 0)
        await Promise.race([Promise.allSettled([...this.inFlight]), sleep(deadline - Date.now())]);
      const quietFor = Date.now() - this.lastWriteAt;
      if (this.inFlight.size === 0 && quietFor >= quietMs) return;
      await sleep(Math.min(quietMs - quietFor, deadline - Date.now()));
    }
  }

  /** Waits for writes in flight, then drops any later ones. */
  async close(): Promise<void> {
    this.stopRetry.abort();
    await Promise.allSettled([...this.inFlight]);
    this.closed = true;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
