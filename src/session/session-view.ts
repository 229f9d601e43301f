/**
 * How a session is shown to people and programs: the `wa status --json` object (README "Commands"), also
 * served by the daemon's `/sessions` and counted by `/metrics`. Consumers ignore fields they do not know.
 */
import { phoneOf } from '../store/creds-summary.js';
import type { EventType } from '../event-types.js';
import type { Lease, OutboxCounts, SessionRecord, SessionStore, WebhookStats } from '../store/types.js';

/** `serve-1a2b3c4d (host web-1, pid 42)`: who holds a lease, in errors and in `wa status`. */
export const describeOwner = (lease: Pick<Lease, 'ownerId' | 'host' | 'pid'>): string =>
  `${lease.ownerId} (host ${displayHost(lease.host)}, pid ${lease.pid})`;

/** A lease's host without the process identity src/session/lease.ts ownerHost() appends after '#'. */
export const displayHost = (host: string): string => host.split('#')[0]!;

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
          host: displayHost(session.lease.host),
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

/** `wa status --json` `webhook`: README "Webhooks". */
export const webhookView = (stats: WebhookStats) => ({
  pending: stats.pending,
  dead: stats.dead,
  delivered: stats.delivered,
  attempts: stats.attempts,
  nextAttemptAt: stats.nextAttemptAt,
  lastError: stats.lastError,
});

/** A session as `wa status --json` and `GET /sessions` show it: its view, and its outbox and webhook state where in use. */
export type StatusView = SessionView & { outbox?: OutboxCounts; webhook?: ReturnType<typeof webhookView> };

/**
 * Adds the messaging state to the sessions' views, in two queries for all of them: `outbox` for sessions
 * with messages waiting (queued) or ambiguous (unknown); `webhook` for every session when webhooks are
 * configured here (`webhookTypes` given, pending counted by those types), else for those delivered to
 * before (a daemon elsewhere posts them). A read-only copy of an older database lacks the tables: then
 * the views are shown without them.
 */
export async function statusViews(
  store: SessionStore,
  sessions: readonly SessionRecord[],
  webhook: { types: readonly EventType[] | undefined } | undefined,
): Promise<StatusView[]> {
  const outbox = await store.outboxCounts().catch(() => new Map<string, OutboxCounts>());
  const webhooks = await store
    .webhookStats({ types: webhook?.types, allSessions: webhook !== undefined })
    .catch(() => new Map<string, WebhookStats>());
  return sessions.map((session) => {
    const counts = outbox.get(session.id);
    const stats = webhooks.get(session.id);
    return {
      ...sessionView(session),
      ...(counts ? { outbox: counts } : {}),
      ...(stats ? { webhook: webhookView(stats) } : {}),
    };
  });
}
