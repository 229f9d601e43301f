import type { SessionSocket } from '../session/connection.js';
import type { Disconnect } from '../session/disconnect.js';
import type { LeaseOwner } from '../session/lease.js';
import { displayHost } from '../session/session-view.js';
import type { Lease, SessionRecord } from '../store/types.js';
import { ConnectLimiter, pacingPolicy } from './backoff.js';
import { SessionRunner, type DaemonServices } from './session-runner.js';

/**
 * Whether this daemon does its job (HTTP `/readyz`): every paired session it may own is open, or knowingly
 * waiting for another live owner; none is stopped by an error; its leases can be renewed.
 */
export interface Readiness {
  ready: boolean;
  /** Sessions this process owns. */
  owned: number;
  /** Owned sessions that are not open (connecting, or waiting to reconnect). */
  notOpen: string[];
  /** Paired sessions it may own that it has not taken yet (free leases, or the database would not let it). */
  untaken: string[];
  /** Paired sessions it stopped for a reason reconnecting cannot fix, with that reason. */
  stopped: Array<{ id: string; reason: string }>;
  /** Paired sessions held by another live owner: waited for, not a fault. */
  waiting: string[];
  /** Whether the last lease renewal succeeded, recently. */
  leasesRenewed: boolean;
  /** Whether the last look for sessions could read the database. */
  discoveryOk: boolean;
}

/**
 * How often sessions held by another live owner are looked at again. An overlapping deploy (the old
 * daemon still stopping, README "Deploying") releases each lease as its session closes; looking every
 * second, not every discovery round, takes each within about a second of its release.
 */
export const WAITING_POLL_MS = 1000;
/** Up to this many waited-for sessions are read one by one each poll; more, and a discovery round lists them all. */
const WAITING_READ_LIMIT = 16;

/** A paired session this process may own but another live process holds: waited for, not fought over. */
export interface WaitingSession {
  id: string;
  owner: { ownerId: string; host: string; pid: number };
  /** When we started waiting for it (epoch ms). */
  since: string;
}

export interface SupervisorDeps extends DaemonServices {
  owner: LeaseOwner;
  /** Serve only these sessions (empty: every paired session this process can own). */
  only: readonly string[];
  /** Sessions not to take even when eligible: being paired over HTTP in this process (src/daemon/pairing.ts). */
  skip?: ((id: string) => boolean) | undefined;
  /**
   * Whether a lease's holder is provably gone (src/session/lease.ts holderIsGone: it ran in this boot and
   * PID namespace and its process is not running). Such a lease is taken at once instead of waited out.
   */
  holderIsGone?: ((lease: Lease) => boolean) | undefined;
}

/**
 * Owns one runner per session it holds the lease for. It looks for sessions to take (paired, not owned by
 * a live process) every `discoveryMs`, renews all its leases in one write every `leaseRenewMs`, and closes
 * a session quietly when its lease turns out to be someone else's (a `--takeover`, or an expiry after a
 * stall) instead of fighting over it.
 */
export class Supervisor {
  private readonly deps: SupervisorDeps;
  private readonly runners = new Map<string, SessionRunner>();
  /** Sessions this process stopped for a reason, with the lastConnectedAt they had: retried only after a newer connect. */
  private readonly stopped = new Map<string, { lastConnectedAt: string | null; reason: string }>();
  /** The sessions the last discovery round saw (undefined until one could list them). */
  private listed: SessionRecord[] | undefined;
  private discoveryOk = false;
  private renewOk = true;
  private readonly limiter: ConnectLimiter;
  private timers: Array<() => void> = [];
  private stopping = false;
  /** The discovery round in flight, if any: one at a time. */
  private discovery: Promise<void> | undefined;
  /** When the last successful lease renewal was sent (monotonic clock). */
  private renewedAt: number;
  /**
   * When discovery took each session (monotonic): an acquisition is a renewal of that lease. Without it,
   * the first tick after an outage would judge a session discovery just reopened by the stale time of
   * the last renewal before the outage, and drop it again.
   */
  private readonly acquiredAt = new Map<string, number>();
  private renewing = false;
  /** Sessions held by another live owner, by id: logged once each, shown in /sessions, polled every second. */
  private readonly waitingFor = new Map<string, WaitingSession>();

  constructor(deps: SupervisorDeps) {
    this.deps = deps;
    this.limiter = new ConnectLimiter(
      pacingPolicy(deps.timing.connectsPerSecond, deps.timing.maxConnectsPerSecond),
      deps.clock,
    );
    this.renewedAt = deps.clock.monotonic();
  }

  /** Sessions this process owns right now, with their live connection state. */
  owned(): Array<{ id: string; connection: SessionRunner['connection'] }> {
    return [...this.runners.values()].map((r) => ({ id: r.id, connection: r.connection }));
  }

  /** The open Baileys socket of a session this process owns, or undefined (not ours, or not connected). */
  socket(id: string): SessionSocket['baileys'] {
    return this.runners.get(id)?.liveSocket();
  }

  async start(): Promise<void> {
    await this.discover();
    const { clock, timing } = this.deps;
    this.timers.push(
      clock.every(timing.discoveryMs, () => void this.discover()),
      clock.every(timing.leaseRenewMs, () => void this.renew()),
      clock.every(WAITING_POLL_MS, () => void this.lookAtWaiting()),
    );
  }

  /** Looks for sessions now rather than at the next tick (a pairing in this process just finished). */
  pickUp(): void {
    // A round already under way may have listed the sessions before this one was paired: one more after it.
    void this.discover().then(() => this.discover());
  }

  /**
   * Every WAITING_POLL_MS while sessions are held elsewhere: reads those sessions alone (a few indexed
   * reads, not the whole registry, which may hold thousands), notes a new holder, and runs a discovery
   * round once one of them is free. Past a handful, one listing is cheaper than many reads, so discovery looks itself.
   */
  private async lookAtWaiting(): Promise<void> {
    if (this.waitingFor.size === 0 || this.stopping || this.discovery) return;
    if (this.waitingFor.size > WAITING_READ_LIMIT) return this.discover();
    try {
      const read = await Promise.all([...this.waitingFor.keys()].map((id) => this.deps.store.getSession(id)));
      const sessions = read.filter((s): s is SessionRecord => s !== undefined);
      if (this.discovery || this.stopping) return; // a round that started meanwhile has the newer view
      this.noteWaiting(sessions); // a new holder is logged; a session gone is forgotten
      if (sessions.some((s) => this.eligible(s))) await this.discover();
    } catch {
      await this.discover(); // the round logs what failed
    }
  }

  /** Whether this process may serve the session at all (`wa serve [id…]` limits it). */
  serves(id: string): boolean {
    return this.deps.only.length === 0 || this.deps.only.includes(id);
  }

  /** Sessions this process waits for: their lease is another live process's (an old deployment still stopping, say). */
  waiting(): WaitingSession[] {
    return [...this.waitingFor.values()];
  }

  /** Notes who holds each session we would serve but may not take yet, logging each new wait once. */
  private noteWaiting(sessions: readonly SessionRecord[]): void {
    const { only, owner, logger, clock } = this.deps;
    const seen = new Set<string>();
    for (const s of sessions) {
      if (s.state !== 'paired' || this.runners.has(s.id) || this.isStopped(s)) continue;
      if (only.length > 0 && !only.includes(s.id)) continue;
      if (s.lease === null || s.lease.ownerId === owner.ownerId || this.gone(s.lease)) continue;
      seen.add(s.id);
      if (this.waitingFor.get(s.id)?.owner.ownerId === s.lease.ownerId) continue;
      const holder = { ownerId: s.lease.ownerId, host: displayHost(s.lease.host), pid: s.lease.pid };
      this.waitingFor.set(s.id, { id: s.id, owner: holder, since: new Date(clock.now()).toISOString() });
      logger.info(
        { session: s.id, owner: holder, leaseExpiresAt: new Date(s.lease.expiresAt).toISOString() },
        `waiting for ${holder.ownerId} (pid ${holder.pid} on ${holder.host}) to release the session`,
      );
    }
    // A session freed since is kept until this round takes it (the log says how long we waited); one
    // gone, unpaired or no longer ours to serve is forgotten.
    const free = new Set(sessions.filter((s) => this.eligible(s)).map((s) => s.id));
    for (const id of this.waitingFor.keys()) if (!seen.has(id) && !free.has(id)) this.waitingFor.delete(id);
  }

  private eligible(session: SessionRecord): boolean {
    if (session.state !== 'paired' || this.runners.has(session.id)) return false;
    if (this.deps.only.length > 0 && !this.deps.only.includes(session.id)) return false;
    if (this.isStopped(session) || this.deps.skip?.(session.id) === true) return false;
    return session.lease === null || session.lease.ownerId === this.deps.owner.ownerId || this.gone(session.lease);
  }

  /**
   * A lease whose holder crashed on this host (a bot or daemon killed with SIGKILL and restarted): taken
   * at once rather than after its TTL, as `wa connect` does; never on a hostname match alone.
   */
  private gone(lease: Lease): boolean {
    return this.deps.holderIsGone?.(lease) ?? false;
  }

  private isStopped(session: SessionRecord): boolean {
    const entry = this.stopped.get(session.id);
    return entry !== undefined && entry.lastConnectedAt === session.lastConnectedAt;
  }

  /** See Readiness; computed from the last discovery round and renewal, without a query of its own. */
  readiness(): Readiness {
    const { only, owner, timing, clock } = this.deps;
    const owned = this.owned();
    const notOpen = owned.filter((s) => s.connection !== 'open').map((s) => s.id);
    const mine = (this.listed ?? []).filter(
      (s) => s.state === 'paired' && (only.length === 0 || only.includes(s.id)) && !this.runners.has(s.id),
    );
    const stopped = mine
      .filter((s) => this.isStopped(s))
      .map((s) => ({ id: s.id, reason: this.stopped.get(s.id)!.reason }));
    const waiting = mine.filter((s) => s.lease !== null && s.lease.ownerId !== owner.ownerId).map((s) => s.id);
    const untaken = mine
      .filter((s) => !this.isStopped(s) && (s.lease === null || s.lease.ownerId === owner.ownerId))
      .map((s) => s.id);
    // A renewal that hangs is as bad as one that fails: two ticks without an answer is not renewing.
    const leasesRenewed = this.renewOk && clock.monotonic() - this.renewedAt < 2 * timing.leaseRenewMs;
    const ready =
      this.discoveryOk && leasesRenewed && notOpen.length === 0 && untaken.length === 0 && stopped.length === 0;
    return {
      ready,
      owned: owned.length,
      notOpen,
      untaken,
      stopped,
      waiting,
      leasesRenewed,
      discoveryOk: this.discoveryOk,
    };
  }

  /**
   * One round at a time: a slow round (a slow database) overlapping the next could otherwise start two
   * runners for one session, since our own lease is always ours to take again.
   */
  private discover(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.discovery ??= this.discoverRound().finally(() => (this.discovery = undefined));
    return this.discovery;
  }

  private async discoverRound(): Promise<void> {
    try {
      const { store, owner, timing, logger } = this.deps;
      // Take no more per round than the connect pacing can open before the next round (ramping up if
      // connects keep succeeding): it costs nothing in time-to-open, and leaves the rest to other daemons
      // looking at the same database, so sessions spread across them instead of the first one up taking
      // everything. Shuffled for the same reason.
      const perRound = Math.max(1, this.limiter.capacity(timing.discoveryMs));
      const sessions = await store.listSessions();
      this.listed = sessions;
      this.noteWaiting(sessions);
      const candidates = sessions.filter((s) => this.eligible(s));
      for (const session of shuffle(candidates).slice(0, perRound)) {
        if (this.stopping) break;
        const attemptAt = this.deps.clock.monotonic();
        // From that holder only, atomically: never from someone who took the lease meanwhile.
        const from = session.lease && session.lease.ownerId !== owner.ownerId ? session.lease : undefined;
        const result = await store.acquireLease(
          session.id,
          owner,
          timing.leaseTtlMs,
          from ? { from: from.ownerId } : false,
        );
        if (result.acquired && from) {
          logger.info(
            { session: session.id, from: from.ownerId, pid: from.pid },
            'took over the lease of a process that is gone (it ran on this host)',
          );
        }
        if (!result.acquired || this.stopping || this.runners.has(session.id)) continue;
        const waited = this.waitingFor.get(session.id);
        this.waitingFor.delete(session.id);
        this.acquiredAt.set(session.id, attemptAt);
        this.stopped.delete(session.id);
        const runner = new SessionRunner({
          ...this.deps,
          id: session.id,
          ownerId: owner.ownerId,
          logger: logger.child({ session: session.id }),
          baileysLogger: this.deps.baileysLogger.child({ session: session.id }),
          limiter: this.limiter,
          onStopped: (id, disconnect) => void this.onStopped(id, disconnect),
        });
        this.runners.set(session.id, runner);
        logger.info(
          {
            session: session.id,
            ...(waited
              ? { waitedFor: waited.owner.ownerId, waitedMs: this.deps.clock.now() - Date.parse(waited.since) }
              : {}),
          },
          'took session',
        );
        runner.start();
      }
      this.discoveryOk = true;
    } catch (error) {
      this.discoveryOk = false;
      this.deps.logger.error({ err: error }, 'looking for sessions failed; retrying');
    }
  }

  private async onStopped(id: string, disconnect: Disconnect): Promise<void> {
    const runner = this.runners.get(id);
    if (!runner) return;
    this.runners.delete(id);
    this.acquiredAt.delete(id);
    if (disconnect.action === 'stop' || disconnect.action === 'qr_expired') {
      const session = await this.deps.store.getSession(id).catch(() => undefined);
      this.stopped.set(id, { lastConnectedAt: session?.lastConnectedAt ?? null, reason: disconnect.reason });
    }
    await this.deps.store.releaseLease(id, this.deps.owner.ownerId).catch(() => undefined);
  }

  private async renew(): Promise<void> {
    if (this.stopping) return;
    // Self-fencing: once our leases may have expired (the database unreachable or hanging for a TTL, a
    // restart say), another daemon may take them, so close our sockets first. Otherwise both would be
    // connected for a moment, and WhatsApp answers a second login with 440 (replaced). Checked on every
    // tick, whether or not the last renewal has answered yet.
    const fenceAfter = this.deps.timing.leaseTtlMs - this.deps.timing.leaseRenewMs;
    const now = this.deps.clock.monotonic();
    for (const [id, runner] of this.runners) {
      const renewedAt = Math.max(this.renewedAt, this.acquiredAt.get(id) ?? -Infinity);
      if (now - renewedAt >= fenceAfter) {
        this.drop(id, runner, 'could not renew the lease in time; closing this session until the database answers');
      }
    }
    if (this.renewing) return;
    this.renewing = true;
    // Measured before the request: the database's expiry is at least this much later than our clock here.
    const attemptAt = this.deps.clock.monotonic();
    try {
      const held = new Set(await this.deps.store.renewLeases(this.deps.owner.ownerId, this.deps.timing.leaseTtlMs));
      this.renewedAt = attemptAt;
      this.renewOk = true;
      for (const [id, runner] of this.runners) {
        if (held.has(id)) continue;
        // Someone else holds it now: close without logging out, write nothing more, do not fight back.
        this.drop(id, runner, 'lease lost to another process; closing this session quietly');
      }
    } catch (error) {
      this.renewOk = false;
      this.deps.logger.warn({ err: error }, 'renewing leases failed; retrying');
    } finally {
      this.renewing = false;
    }
  }

  private drop(id: string, runner: SessionRunner, message: string): void {
    this.runners.delete(id);
    this.acquiredAt.delete(id);
    this.deps.logger.warn({ session: id }, message);
    void runner.stop({ leaseLost: true });
  }

  /** Stops connecting, closes every socket without logging out, waits for key writes, releases leases. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const cancel of this.timers) cancel();
    await this.discovery;
    const runners = [...this.runners.values()];
    this.runners.clear();
    // Each lease goes the moment its socket is closed, not once all are: a new deployment waiting for
    // them (README "Deploying") takes each session as soon as it is free, and no session is ever open in
    // two places (our socket is ended before its lease is released).
    await Promise.all(
      runners.map(async (r) => {
        await r.stop();
        await this.deps.store.releaseLease(r.id, this.deps.owner.ownerId).catch(() => undefined);
      }),
    );
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
