/**
 * Pairing inside the daemon (`POST /sessions/{id}/pair`): the same flow as `wa connect`
 * (src/session/pairing-flow.ts), run in the background with the daemon's lease owner, its events kept
 * for the page's event stream. Once the connection opened and the creds are stored, the lease (already
 * this process's) is handed to the supervisor, which takes the now paired session and keeps it
 * connected. A cancelled or failed pairing stores nothing and releases the lease.
 */
import type { Logger } from 'pino';
import type { Timing } from '../config.js';
import { ExitCode, WaError, isWaError, usageError } from '../errors.js';
import type { SocketFactory } from '../session/connection.js';
import { SessionLease, type LeaseOwner } from '../session/lease.js';
import { connectSession, type StopReason } from '../session/pairing-flow.js';
import type { SessionStore } from '../store/types.js';

/** The events of `wa connect --json` (README "Pairing"); `name` is extra, for "Connected as +… (name)". */
export type PairingEvent =
  | { event: 'qr'; qr: string; expiresAt: string }
  | { event: 'code'; code: string }
  | { event: 'paired'; jid: string; name: string | null }
  | { event: 'open'; jid: string; name: string | null }
  | { event: 'error'; code: string; message: string };

export type PairMethod = { method: 'qr' } | { method: 'code'; phone: string };

export interface PairingDeps {
  store: SessionStore;
  openSocket: SocketFactory;
  /** wa's log lines (never a QR payload or a code). */
  logger: Logger;
  baileysLogger: Logger;
  timing: Pick<Timing, 'leaseTtlMs' | 'leaseRenewMs' | 'qrTimeoutMs'>;
  /** The daemon's lease owner: the supervisor takes a session whose lease is already this owner's. */
  owner: LeaseOwner;
  /** The pairing of `id` opened and its creds are stored: the daemon takes the session from here. */
  onPaired: (id: string) => void;
  /** A pairing still not done after this long is given up (as `wa connect`'s default timeout). */
  timeoutMs: number;
  /** How long the outcome of a finished pairing stays readable by a stream opened late. */
  keepFinishedMs?: number;
}

type Listener = { onEvent: (event: PairingEvent) => void; onEnd: () => void };

class Pairing {
  readonly stop = new AbortController();
  stopReason: StopReason | undefined;
  /** The QR on screen now, or the code. */
  current: PairingEvent | undefined;
  /** paired, open, error: what a late stream replays after (or instead of) the current code. */
  readonly outcome: PairingEvent[] = [];
  readonly listeners = new Set<Listener>();
  finished = false;
  done: Promise<void> = Promise.resolve();
  readonly id: string;
  readonly method: PairMethod['method'];
  constructor(id: string, method: PairMethod['method']) {
    this.id = id;
    this.method = method;
  }

  get paired(): boolean {
    return this.outcome.some((e) => e.event === 'paired' || e.event === 'open');
  }

  halt(reason: StopReason): void {
    this.stopReason ??= reason;
    this.stop.abort();
  }

  emit(event: PairingEvent): void {
    if (event.event === 'qr' || event.event === 'code') this.current = event;
    else this.outcome.push(event);
    for (const listener of this.listeners) listener.onEvent(event);
  }

  /** Current QR or code first (unless the phone already accepted), then the outcome so far. */
  replay(): PairingEvent[] {
    return [...(this.current && !this.paired ? [this.current] : []), ...this.outcome];
  }

  end(): void {
    this.finished = true;
    for (const listener of this.listeners) listener.onEnd();
    this.listeners.clear();
  }
}

export class Pairings {
  private readonly deps: PairingDeps;
  private readonly pairings = new Map<string, Pairing>();
  private stopping = false;

  constructor(deps: PairingDeps) {
    this.deps = deps;
  }

  /** Whether a pairing of `id` is under way here (the supervisor leaves such a session alone). */
  isPairing(id: string): boolean {
    const pairing = this.pairings.get(id);
    return pairing !== undefined && !pairing.finished;
  }

  /** `pairing: 'qr' | 'code'` for the sessions being paired, for /sessions. */
  active(): Map<string, PairMethod['method']> {
    return new Map([...this.pairings.values()].filter((p) => !p.finished).map((p) => [p.id, p.method]));
  }

  /**
   * Takes the lease and starts pairing in the background; resolves once it started (the QR or code
   * follows on the event stream). Refuses an unknown session (404), a paired one, one already being
   * paired, or one another live process holds (409).
   */
  async start(id: string, method: PairMethod): Promise<{ id: string; method: PairMethod['method'] }> {
    if (this.stopping) throw new WaError(ExitCode.unavailable, 'E_STOPPING', 'the daemon is stopping');
    if (this.isPairing(id)) {
      throw new WaError(ExitCode.busy, 'E_PAIRING_ACTIVE', `session '${id}' is being paired already`, {
        hint: `DELETE /sessions/${id}/pair cancels it`,
      });
    }
    const { store, owner, timing } = this.deps;
    const session = await store.getSession(id);
    if (!session) throw usageError('E_SESSION_UNKNOWN', `no session '${id}'`);
    if (session.state === 'paired') {
      throw new WaError(ExitCode.busy, 'E_SESSION_PAIRED', `session '${id}' is paired already`, {
        hint: `wa logout ${id} first to pair it with another phone`,
      });
    }
    const pairing = new Pairing(id, method.method);
    // Claimed before the first await below, so two requests at once cannot both start.
    this.pairings.set(id, pairing);
    const lease = new SessionLease(store, id, owner, { ttlMs: timing.leaseTtlMs, renewMs: timing.leaseRenewMs });
    try {
      await lease.acquire(false, () => pairing.halt('lease'));
    } catch (error) {
      this.pairings.delete(id);
      throw error;
    }
    pairing.done = this.run(pairing, lease, method, session.state === 'logged_out');
    return { id, method: method.method };
  }

  private async run(pairing: Pairing, lease: SessionLease, method: PairMethod, wasLoggedOut: boolean): Promise<void> {
    const { store, openSocket, timeoutMs } = this.deps;
    const { id } = pairing;
    const logger = this.deps.logger.child({ session: id });
    logger.info({ method: method.method }, 'pairing started');
    const timer = setTimeout(() => pairing.halt('timeout'), timeoutMs);
    let paired = false;
    try {
      await connectSession({
        store,
        id,
        phone: method.method === 'code' ? method.phone : undefined,
        openSocket,
        logger: this.deps.baileysLogger.child({ session: id }),
        listener: {
          connecting: () => undefined,
          qr: (qr, expiresAt) => pairing.emit({ event: 'qr', qr, expiresAt: expiresAt.toISOString() }),
          code: (code) => pairing.emit({ event: 'code', code }),
          paired: (jid, name) => pairing.emit({ event: 'paired', jid, name }),
          open: (jid, name) => pairing.emit({ event: 'open', jid, name }),
        },
        stop: pairing.stop.signal,
        stopReason: () => pairing.stopReason,
        qrTimeoutMs: this.deps.timing.qrTimeoutMs,
        fence: lease.owner.ownerId,
        onLeaseLost: () => pairing.halt('lease'),
        timeoutMs,
        wasLoggedOut,
      });
      paired = true;
      logger.info('pairing done; serving the session');
    } catch (error) {
      const code = isWaError(error) ? error.code : 'E_INTERNAL';
      // A WaError's message names the session and the reason, never a QR payload or a code.
      const message = isWaError(error) ? error.message : 'internal error';
      if (!isWaError(error)) logger.error({ err: error }, 'pairing failed unexpectedly');
      else logger.info({ code }, 'pairing ended without a linked phone');
      pairing.emit({ event: 'error', code, message });
    } finally {
      clearTimeout(timer);
    }
    if (paired && !this.stopping) {
      // The lease stays this process's: the supervisor renews every lease of its owner and takes the session.
      lease.handOff();
      pairing.end();
      this.deps.onPaired(id);
    } else {
      await lease.release().catch((error: unknown) => logger.warn({ err: error }, 'releasing the lease failed'));
      pairing.end();
    }
    const keep = this.deps.keepFinishedMs ?? 60_000;
    setTimeout(() => {
      if (this.pairings.get(id) === pairing) this.pairings.delete(id);
    }, keep).unref();
  }

  /**
   * Follows a pairing: `onEvent` gets the replay at once, then each new event; `onEnd` when it finished.
   * Undefined when the session has no pairing (under way or just finished) to follow.
   */
  subscribe(id: string, onEvent: Listener['onEvent'], onEnd: Listener['onEnd']): (() => void) | undefined {
    const pairing = this.pairings.get(id);
    if (!pairing) return undefined;
    for (const event of pairing.replay()) onEvent(event);
    if (pairing.finished) {
      onEnd();
      return () => undefined;
    }
    const listener = { onEvent, onEnd };
    pairing.listeners.add(listener);
    return () => void pairing.listeners.delete(listener);
  }

  /** The QR payload on screen for `id` now (for the image route), if a QR pairing is showing one. */
  currentQr(id: string): string | undefined {
    const pairing = this.pairings.get(id);
    const current = pairing && !pairing.finished && !pairing.paired ? pairing.current : undefined;
    return current?.event === 'qr' ? current.qr : undefined;
  }

  /**
   * Cancels a pairing under way: the socket is closed and nothing is stored (the session stays
   * unpaired). Refused once the phone accepted (the login is finishing: the session will be paired).
   */
  async cancel(id: string): Promise<void> {
    const pairing = this.pairings.get(id);
    if (!pairing || pairing.finished) throw usageError('E_NOT_PAIRING', `session '${id}' is not being paired`);
    if (pairing.paired) {
      throw new WaError(ExitCode.busy, 'E_PAIRING_FINISHING', `the phone already accepted; session '${id}' is paired`);
    }
    pairing.halt('cancelled');
    await pairing.done;
  }

  /** Serve is stopping: every pairing under way is cancelled (nothing stored) and its lease released. */
  async stop(): Promise<void> {
    this.stopping = true;
    const running = [...this.pairings.values()].filter((p) => !p.finished);
    for (const pairing of running) pairing.halt('cancelled');
    await Promise.all(running.map((p) => p.done));
  }
}
