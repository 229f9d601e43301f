import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { ExitCode, WaError } from '../errors.js';
import type { Lease, SessionStore } from '../store/types.js';
import { describeOwner } from './session-view.js';

export type LeaseOwner = Omit<Lease, 'expiresAt'>;

/** What the lease code reads of /proc, injected so the identity rules are testable anywhere. */
export interface ProcReader {
  /** A file's text, or undefined when it cannot be read (absent, not Linux). */
  readFile(path: string): string | undefined;
  /** A symlink's target, or undefined. */
  readLink(path: string): string | undefined;
}

export const procReader: ProcReader = {
  readFile: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  readLink: (path) => {
    try {
      return readlinkSync(path);
    } catch {
      return undefined;
    }
  },
};

/**
 * Which pid namespace of which boot this process runs in, as a short hash: two processes with equal
 * identities see the same pids. A hostname cannot tell that: containers share one hostname with separate
 * PID namespaces, where "pid 42 does not exist here" says nothing about pid 42 over there.
 * Undefined when /proc does not tell (not Linux): then no lease is ever taken early.
 */
export function hostIdentity(reader: ProcReader): string | undefined {
  const boot = reader.readFile('/proc/sys/kernel/random/boot_id')?.trim();
  const pidNamespace = reader.readLink('/proc/self/ns/pid');
  if (!boot || !pidNamespace) return undefined;
  return createHash('sha256').update(`${boot}\n${pidNamespace}`).digest('hex').slice(0, 16);
}

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22): a reused pid has another. */
export function processStartTime(reader: ProcReader, pid: number): string | undefined {
  const stat = reader.readFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Field 2 (the command name, in parentheses) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = fields[22 - 3];
  return start && /^\d+$/.test(start) ? start : undefined;
}

/**
 * The `host` a lease records: the hostname for people, then `#<identity>:<start time>` for processes
 * (`web-1#3f2a…:81234`). Encoded into the existing text field so both backends keep their schema;
 * hostnames never contain '#', and displayHost() strips the suffix for display.
 */
export function ownerHost(hostname: string, pid: number, reader: ProcReader = procReader): string {
  const identity = hostIdentity(reader);
  const start = processStartTime(reader, pid);
  return identity && start ? `${hostname}#${identity}:${start}` : hostname;
}

/**
 * Whether a lease's holder is provably gone: it recorded our boot and PID namespace identity, and its pid
 * is not running here, or runs with another start time (the pid was reused). Anything less certain (an
 * older wa, another host or container, /proc unreadable) is not proof: the lease is waited out.
 */
export function holderIsGone(holder: Pick<Lease, 'host' | 'pid'>, reader: ProcReader = procReader): boolean {
  const match = /#([0-9a-f]+):(\d+)$/.exec(holder.host);
  if (!match) return false;
  const here = hostIdentity(reader);
  if (!here || here !== match[1]) return false;
  const start = processStartTime(reader, holder.pid);
  return start === undefined || start !== match[2];
}

/** A fresh owner identity for this process: `<role>-<8 hex>` on this host and pid (host as ownerHost records it). */
export function newOwner(role: string, host: string, pid: number, reader: ProcReader = procReader): LeaseOwner {
  return { ownerId: `${role}-${randomBytes(4).toString('hex')}`, host: ownerHost(host, pid, reader), pid };
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
  private readonly reader: ProcReader;

  /** README "One owner per session (leases)": TTL 30 s, renewed every 10 s (config.timing), released on exit. */
  constructor(
    store: SessionStore,
    sessionId: string,
    owner: LeaseOwner,
    timing: LeaseTiming,
    reader: ProcReader = procReader,
  ) {
    this.reader = reader;
    this.store = store;
    this.sessionId = sessionId;
    this.owner = owner;
    this.timing = timing;
  }

  /** Takes the lease or throws exit 6 naming the live owner. `takeover` takes it regardless. */
  async acquire(takeover: boolean, onLost: () => void): Promise<void> {
    let result = await this.store.acquireLease(this.sessionId, this.owner, this.timing.ttlMs, takeover);
    if (!result.acquired && holderIsGone(result.holder, this.reader)) {
      // The owner ran in this boot and PID namespace and its process is gone (killed with SIGKILL, say): its
      // lease is stale, and waiting out the TTL would only make the user wait.
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

  /**
   * Stops renewing without releasing: the lease stays ours for another holder in this process with the
   * same owner id (the daemon's supervisor renews every lease of its owner id in one write, and takes a
   * paired session whose lease is already its own).
   */
  handOff(): void {
    this.stop();
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.stop();
    await this.store.releaseLease(this.sessionId, this.owner.ownerId);
  }
}
