import type { AuthenticationState } from '@whiskeysockets/baileys';
import { useStoreAuthState } from '../auth/auth-state.js';
import type { SessionStore } from '../store/types.js';

export interface SessionAuthOptions {
  /**
   * Keep creds in memory until the phone has accepted the pairing (`creds.account` is set). Baileys
   * writes `creds.me` for a pairing-code request before anything is confirmed; stored, such creds make
   * the next start log in as a device that does not exist (401), so an abandoned pairing must leave nothing.
   */
  deferCredsUntilPaired: boolean;
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
  /** Where the session lives: sockets store what they receive there too (src/session/capture.ts). */
  readonly store: SessionStore;
  readonly sessionId: string;

  private constructor(
    state: AuthenticationState,
    saveCreds: () => Promise<void>,
    options: SessionAuthOptions,
    store: SessionStore,
    sessionId: string,
  ) {
    this.store = store;
    this.sessionId = sessionId;
    this.deferCreds = options.deferCredsUntilPaired;
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
    const { state, saveCreds } = await useStoreAuthState(store, sessionId);
    return new SessionAuth(state, saveCreds, options, store, sessionId);
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
    return this.track(this.persistCreds());
  };

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
    await Promise.allSettled([...this.inFlight]);
    this.closed = true;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
