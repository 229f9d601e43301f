import { randomBytes } from 'node:crypto';
import { ExitCode, WaError } from '../errors.js';
import type { Lease, SessionStore } from '../store/types.js';
import { describeOwner } from './session-view.js';

export type LeaseOwner = Omit<Lease, 'expiresAt'>;

/** A fresh owner identity for this process: `<role>-<8 hex>` on this host and pid. */
export function newOwner(role: string, host: string, pid: number): LeaseOwner {
  return { ownerId: `${role}-${randomBytes(4).toString('hex')}`, host, pid };
}

export interface LeaseTiming {
  ttlMs: number;
  renewMs: number;
}

/**
 * Holds one session's lease: takes it before any socket opens, renews it on a timer, and tells the
 * holder when it is lost (taken over elsewhere), so the holder can close quietly instead of fighting.
 */
export class SessionLease {
  private timer: NodeJS.Timeout | undefined;
  private held = false;

  private readonly store: SessionStore;
  readonly sessionId: string;
  readonly owner: LeaseOwner;
  private readonly timing: LeaseTiming;

  /** README "One owner per session (leases)": TTL 30 s, renewed every 10 s (config.timing), released on exit. */
  constructor(store: SessionStore, sessionId: string, owner: LeaseOwner, timing: LeaseTiming) {
    this.store = store;
    this.sessionId = sessionId;
    this.owner = owner;
    this.timing = timing;
  }

  /** Takes the lease or throws exit 6 naming the live owner. `takeover` takes it regardless. */
  async acquire(takeover: boolean, onLost: () => void): Promise<void> {
    let result = await this.store.acquireLease(this.sessionId, this.owner, this.timing.ttlMs, takeover);
    if (!result.acquired && result.holder.host === this.owner.host && !processExists(result.holder.pid)) {
      // The owner ran on this host and its process is gone (killed with SIGKILL, say): its lease is stale,
      // and waiting out the TTL would only make the user wait. A live pid (even a reused one) still counts.
      result = await this.store.acquireLease(this.sessionId, this.owner, this.timing.ttlMs, {
        from: result.holder.ownerId,
      });
    }
    if (!result.acquired) {
      throw new WaError(
        ExitCode.busy,
        'E_BUSY',
        `session '${this.sessionId}' is in use by ${describeOwner(result.holder)}`,
        {
          hint: `stop that process, or take the session over: --takeover`,
        },
      );
    }
    this.held = true;
    this.timer = setInterval(() => {
      this.store.renewLease(this.sessionId, this.owner.ownerId, this.timing.ttlMs).then(
        (stillOurs) => {
          if (!stillOurs && this.held) {
            this.stop();
            onLost();
          }
        },
        // A failed renewal (database briefly unavailable) is retried on the next tick; the TTL is three ticks.
        () => undefined,
      );
    }, this.timing.renewMs);
  }

  private stop(): void {
    this.held = false;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.stop();
    await this.store.releaseLease(this.sessionId, this.owner.ownerId);
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
