import { ExitCode, usageError, WaError } from '../errors.js';
import { describeOwner } from '../session/session-view.js';
import type { SessionRecord, SessionStore } from '../store/types.js';

/** Loads a session (its id was validated at the CLI edge), or throws a usage error (exit 2) naming what to run instead. */
export async function requireSession(store: SessionStore, id: string): Promise<SessionRecord> {
  const session = await store.getSession(id);
  if (!session) {
    throw usageError('E_SESSION_UNKNOWN', `no session '${id}' in ${store.location}`, { hint: `wa add ${id}` });
  }
  return session;
}

/** Refuses (exit 6) when another live process holds the session's lease. */
export function assertNotBusy(session: SessionRecord): void {
  if (session.lease) {
    throw new WaError(ExitCode.busy, 'E_BUSY', `session '${session.id}' is in use by ${describeOwner(session.lease)}`, {
      hint: `stop that process, or wait until its lease expires at ${new Date(session.lease.expiresAt).toISOString()}`,
    });
  }
}
