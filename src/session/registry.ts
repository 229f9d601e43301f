/**
 * The registry checks every verb shares (`wa connect`, `wa rm`, `DELETE /sessions/{id}`, …): a session that
 * must exist, must not be held by a live process, and is removed only under the same rules everywhere.
 */
import { ExitCode, usageError, WaError } from '../errors.js';
import { describeOwner } from './session-view.js';
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

/**
 * Deletes a session and all its data, as `wa rm` and `DELETE /sessions/{id}` do: never one a live process
 * holds (exit 6), and a paired one only when forced, since the phone would keep listing the device.
 */
export async function removeSession(
  store: SessionStore,
  id: string,
  force: boolean,
  refusal: { detail: string; hint?: string | undefined },
): Promise<void> {
  const session = await requireSession(store, id);
  assertNotBusy(session);
  if (session.state !== 'unpaired' && !force) {
    throw usageError('E_SESSION_PAIRED', `session '${id}' is ${session.state}: ${refusal.detail}`, {
      hint: refusal.hint,
    });
  }
  await store.deleteSession(id);
}
