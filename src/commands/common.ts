import { usageError, WaError, ExitCode } from '../errors.js';
import { assertSessionId } from '../session-id.js';
import { phoneOf } from '../store/creds-summary.js';
import type { Lease, SessionRecord, SessionStore } from '../store/types.js';

/** Validates the id and loads its session, or throws a usage error (exit 2) naming what to run instead. */
export async function requireSession(store: SessionStore, id: string): Promise<SessionRecord> {
  assertSessionId(id);
  const session = await store.getSession(id);
  if (!session) {
    throw usageError('E_SESSION_UNKNOWN', `no session '${id}' in ${store.location}`, { hint: `wa add ${id}` });
  }
  return session;
}

export const describeOwner = (lease: Lease): string => `${lease.ownerId} (host ${lease.host}, pid ${lease.pid})`;

/** Refuses (exit 6) when another live process holds the session's lease. */
export function assertNotBusy(session: SessionRecord): void {
  if (session.lease) {
    throw new WaError(ExitCode.busy, 'E_BUSY', `session '${session.id}' is in use by ${describeOwner(session.lease)}`, {
      hint: `stop that process, or wait until its lease expires at ${new Date(session.lease.expiresAt).toISOString()}`,
    });
  }
}

/** The `wa status` JSON view of a session (SPEC "Commands"); consumers ignore unknown fields. */
export function sessionView(session: SessionRecord) {
  return {
    id: session.id,
    label: session.label,
    state: session.state,
    jid: session.jid,
    phone: phoneOf(session.jid),
    name: session.name,
    createdAt: session.createdAt || null,
    pairedAt: session.pairedAt,
    lastConnectedAt: session.lastConnectedAt,
    lastDisconnect: session.lastDisconnect,
    // A connection is only as live as its owner's lease: a crashed owner leaves 'open' behind.
    connection: session.lease ? session.connection : 'closed',
    owner: session.lease
      ? {
          id: session.lease.ownerId,
          host: session.lease.host,
          pid: session.lease.pid,
          expiresAt: new Date(session.lease.expiresAt).toISOString(),
        }
      : null,
    ...(session.corruptKey ? { error: corruptMessage(session) } : {}),
  };
}
export type SessionView = ReturnType<typeof sessionView>;

export const corruptMessage = (session: SessionRecord): string =>
  `session '${session.id}': stored value '${session.corruptKey ?? ''}' is not valid JSON`;
