/**
 * One connection of one session, as `wa connect`, `wa logout` and the daemon's runner all use it: a socket
 * seen through a narrow interface (so the daemon can be tested on a scripted one), and the one primitive
 * "wait until it opens, closes, or we stop".
 */
import type { ConnectionState as BaileysConnectionState, WASocket } from '@whiskeysockets/baileys';
import type { Logger } from 'pino';
import { classifyDisconnect, type Disconnect } from './disconnect.js';
import type { SessionPatch } from '../store/types.js';
import type { SessionAuth } from './session-auth.js';

export type ConnectionUpdate = Partial<BaileysConnectionState>;

/** The part of a Baileys socket a connection needs. src/session/baileys.ts makes the real one. */
export interface SessionSocket {
  /** Baileys' `connection.update` events. */
  onUpdate(listener: (update: ConnectionUpdate) => void): void;
  /** Every inbound frame: any frame proves the link is alive (WhatsApp pings every keep-alive interval). */
  onFrame(listener: () => void): void;
  /**
   * Closes without logging out; bounded, since a peer that is gone never answers the close handshake.
   * Received messages still in Baileys' event buffer are stored first, and pending message writes awaited.
   */
  end(): Promise<void>;
  /**
   * Resolves once WhatsApp has replayed the offline backlog (`receivedPendingNotifications`) and it is
   * stored: true, or false after maxMs. Absent on scripted sockets, which receive nothing.
   */
  untilBacklogStored?(maxMs: number): Promise<boolean>;
  /** Tears the transport down at once (a dead or stuck link). */
  terminate(): void;
  /** Why this connection's identity checks failed, if they did (src/session/verify-identity.ts). */
  identityFailure(): string | undefined;
  /** The Baileys socket itself, for what only it can do (pairing codes, logout); absent on a scripted socket. */
  readonly baileys: WASocket | undefined;
}

/** Makes a socket for a session's auth state; the seam between wa's connection logic and Baileys. */
export type SocketFactory = (auth: SessionAuth, logger: Logger) => SessionSocket;

export type ConnectionOutcome =
  | { kind: 'open' }
  | { kind: 'closed'; disconnect: Disconnect }
  | { kind: 'stopped' }
  | { kind: 'failed'; error: unknown };

export interface WaitOptions {
  /** Stop waiting (outcome 'stopped') when this aborts. */
  signal?: AbortSignal | undefined;
  /** Sees every update first (QR codes, new logins); `fail` ends the wait with outcome 'failed'. */
  onUpdate?: ((update: ConnectionUpdate, fail: (error: unknown) => void) => void) | undefined;
}

/** Resolves at the first of: the socket opened, it closed (and why), the signal aborted, or `fail` was called. */
export function untilOpenOrClosed(socket: SessionSocket, options: WaitOptions = {}): Promise<ConnectionOutcome> {
  return wait(socket, true, options);
}

/**
 * Resolves when the socket closes (and why), the signal aborted, or `fail` was called; an open on the way
 * is seen by `onUpdate` only. One listener from start to end, so no update falls between two waits.
 */
export function untilClosed(
  socket: SessionSocket,
  options: WaitOptions = {},
): Promise<Exclude<ConnectionOutcome, { kind: 'open' }>> {
  return wait(socket, false, options) as Promise<Exclude<ConnectionOutcome, { kind: 'open' }>>;
}

function wait(
  socket: SessionSocket,
  stopAtOpen: boolean,
  { signal, onUpdate }: WaitOptions,
): Promise<ConnectionOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: ConnectionOutcome): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const onAbort = (): void => settle({ kind: 'stopped' });
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.onUpdate((update) => {
      if (settled) return;
      onUpdate?.(update, (error) => settle({ kind: 'failed', error }));
      if (update.connection === 'open' && stopAtOpen) settle({ kind: 'open' });
      if (update.connection === 'close') {
        settle({ kind: 'closed', disconnect: describeClose(socket, update) });
      }
    });
  });
}

/** The disconnect policy's reading of a close, with the identity failure of this very connection. */
function describeClose(socket: SessionSocket, update: ConnectionUpdate): Disconnect {
  const disconnect = classifyDisconnect(update.lastDisconnect?.error);
  const detail = disconnect.action === 'stop' ? socket.identityFailure() : undefined;
  return detail ? { ...disconnect, detail } : disconnect;
}

/**
 * What a closed connection writes to the session's record: closed, why, and the state WhatsApp's answer
 * puts it in (440 `replaced`; 401/403 `logged_out`, for a session that was paired: a pairing refused is
 * not a logout). One place for connect and serve.
 */
export function closedPatch(disconnect: Disconnect | undefined, paired: boolean, at = new Date()): SessionPatch {
  const patch: SessionPatch = { connection: 'closed' };
  if (disconnect && disconnect.code !== null) {
    patch.lastDisconnect = { code: disconnect.code, reason: disconnect.reason, at: at.toISOString() };
  }
  if (disconnect?.action === 'replaced' || (paired && disconnect?.action === 'logged_out')) {
    patch.state = disconnect.action;
  }
  return patch;
}
