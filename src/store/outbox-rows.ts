/**
 * What both backends share about the outbox (`wa_outbox`, schema v4): the row mapping, the data key that
 * binds a sealed text to its message, and the one rule for status moves. Layout:
 *
 * - `seq`: the order messages were accepted in (SQLite AUTOINCREMENT, PostgreSQL identity); per session,
 *   messages are sent in `seq` order.
 * - `(session_id, message_id)` is unique: the id is chosen before the row is written and sent as is, so a
 *   resend after an ambiguous write reuses it and the recipient dedupes.
 * - `(session_id, idem_key)` is unique where a key is given (`wa send --key`).
 * - `text` is the only content column, and the only one SealedStore seals.
 * Every status change appends a `status` event (chat = recipient, message_id, data {status, code}) in the
 * transaction that makes it, so the event log never tells a state the row does not have.
 */
import type { OutboxCounts, OutgoingMessage, OutgoingStatus } from './types.js';

/** The data key under which an outgoing message's text is sealed (the AAD binds it to this message). */
export const outboxDataKey = (id: string): string => `outbox:text:${JSON.stringify([id])}`;

const RANK: Record<OutgoingStatus, number> = {
  queued: 0,
  sending: 1,
  unknown: 1,
  sent: 2,
  delivered: 3,
  read: 4,
  rejected: 5,
  cancelled: 5,
};

/**
 * Statuses only move forward, whatever order Baileys reports them in (an upsert with status 1 can arrive
 * after a READ update, Utils/event-buffer.js folds updates): `rejected` and `cancelled` are final;
 * `cancelled` only from `queued` (a message never written); `sending` only from `queued` or `unknown` (a
 * claim: the resend of an ambiguous write); `unknown` only from `sending`; `rejected` only before the
 * server ack (`sending`, `unknown`); sent → delivered → read by rank.
 */
export function canMoveStatus(from: OutgoingStatus, to: OutgoingStatus): boolean {
  if (from === 'rejected' || from === 'cancelled') return false;
  switch (to) {
    case 'queued':
      return false;
    case 'cancelled':
      return from === 'queued';
    case 'sending':
      return from === 'queued' || from === 'unknown';
    case 'unknown':
      return from === 'sending';
    case 'rejected':
      return from === 'sending' || from === 'unknown';
    default:
      return from !== 'queued' && RANK[to] > RANK[from];
  }
}

/** A `wa_outbox` row as both backends select it. */
export interface OutboxRow {
  session_id: string;
  message_id: string;
  recipient: string;
  text: string;
  idem_key: string | null;
  status: string;
  code: string | null;
  created_at: string;
  updated_at: string;
}

export const OUTBOX_COLUMNS = `session_id, message_id, recipient, text, idem_key, status, code, created_at, updated_at`;

export const toOutgoing = (row: OutboxRow): OutgoingMessage => ({
  id: row.message_id,
  session: row.session_id,
  to: row.recipient,
  text: row.text,
  key: row.idem_key,
  status: row.status as OutgoingStatus,
  code: row.code,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** The `data` column of a `status` event. */
export const statusData = (status: OutgoingStatus, code: string | null): string => JSON.stringify({ status, code });

/** States a message is final in: pruned with the retention like received messages. */
export const FINAL_STATUSES: readonly OutgoingStatus[] = ['sent', 'delivered', 'read', 'rejected', 'cancelled'];

/** Rows of `status, count(*)` grouped by session, as `wa status` shows them. */
export function countsBySession(
  rows: ReadonlyArray<{ session_id: string; status: string; n: number | string }>,
): Map<string, OutboxCounts> {
  const counts = new Map<string, OutboxCounts>();
  for (const row of rows) {
    const entry = counts.get(row.session_id) ?? { queued: 0, unknown: 0 };
    if (row.status === 'queued' || row.status === 'unknown') entry[row.status] = Number(row.n);
    counts.set(row.session_id, entry);
  }
  return counts;
}
