/**
 * What both backends share about webhook delivery (`wa_webhooks`, schema v5; README "Webhooks"): the row
 * mapping and the one rule for moving a position. Layout, one row per session:
 *
 * - `cursor`: the last event delivered, dead or skipped (filtered out); delivery goes on after it. A
 *   session without a row starts at its oldest kept event (nothing is lost; retention bounds the backlog).
 * - `failing_cursor`, `attempts`, `first_failed_at`, `next_at`: the current event's failures (epoch ms of
 *   the delivering process's clock). They belong to `failing_cursor` only: when the current event changes
 *   (a changed WA_WEBHOOK_EVENTS, the failing event pruned), the next failure starts its count afresh.
 * - `last_error`: the latest failure of any event, kept after a success; `delivered`, `dead`: counters.
 * Nothing here is content: errors are wa's own words ("HTTP 500", "timed out after 10 s"), never a body.
 */
import type { WebhookOutcome, WebhookPosition, WebhookStats } from './types.js';

/** The columns every backend selects, in this order. */
export const WEBHOOK_COLUMNS =
  'session_id, cursor, failing_cursor, attempts, first_failed_at, next_at, last_error, delivered, dead, updated_at';

type Int = string | number | bigint;

/** A `wa_webhooks` row as both backends select it (SQLite numbers, PostgreSQL BIGINT as text). */
export interface WebhookRow {
  session_id: string;
  cursor: Int;
  failing_cursor: Int | null;
  attempts: Int;
  first_failed_at: Int | null;
  next_at: Int | null;
  last_error: string | null;
  delivered: Int;
  dead: Int;
  updated_at: string;
}

const num = (value: Int | null): number | null => (value === null ? null : Number(value));

export function toWebhookPosition(row: WebhookRow): WebhookPosition {
  return {
    session: row.session_id,
    cursor: String(row.cursor),
    failingCursor: row.failing_cursor === null ? null : String(row.failing_cursor),
    attempts: Number(row.attempts),
    firstFailedAt: num(row.first_failed_at),
    nextAt: num(row.next_at),
    lastError: row.last_error,
    delivered: Number(row.delivered),
    dead: Number(row.dead),
    updatedAt: row.updated_at,
  };
}

/** The position of a session with no row: nothing delivered, delivery starts at its oldest kept event. */
export const emptyWebhookPosition = (session: string, at: string): WebhookPosition => ({
  session,
  cursor: '0',
  failingCursor: null,
  attempts: 0,
  firstFailedAt: null,
  nextAt: null,
  lastError: null,
  delivered: 0,
  dead: 0,
  updatedAt: at,
});

/**
 * The position after `outcome` for the event at `cursor`, or undefined when nothing changes: an outcome for
 * an event at or before the position (a deposed owner's late report, a duplicate) never moves it back.
 */
export function nextWebhookPosition(
  current: WebhookPosition | undefined,
  session: string,
  cursor: string,
  outcome: WebhookOutcome,
  at: string,
): WebhookPosition | undefined {
  const before = current ?? emptyWebhookPosition(session, at);
  if (BigInt(cursor) <= BigInt(before.cursor)) return undefined;
  if (outcome.result === 'failed') {
    const same = before.failingCursor === cursor;
    return {
      ...before,
      failingCursor: cursor,
      attempts: same ? before.attempts + 1 : 1,
      firstFailedAt: same && before.firstFailedAt !== null ? before.firstFailedAt : outcome.at,
      nextAt: outcome.nextAt,
      lastError: outcome.error,
      updatedAt: at,
    };
  }
  return {
    ...before,
    cursor,
    failingCursor: null,
    attempts: 0,
    firstFailedAt: null,
    nextAt: null,
    lastError: outcome.result === 'dead' ? outcome.error : before.lastError,
    delivered: before.delivered + (outcome.result === 'delivered' ? 1 : 0),
    dead: before.dead + (outcome.result === 'dead' ? 1 : 0),
    updatedAt: at,
  };
}

/** The row values of a position, in WEBHOOK_COLUMNS order. */
export const webhookValues = (p: WebhookPosition): unknown[] => [
  p.session,
  p.cursor,
  p.failingCursor,
  p.attempts,
  p.firstFailedAt,
  p.nextAt,
  p.lastError,
  p.delivered,
  p.dead,
  p.updatedAt,
];

/** A row of the stats query: a session, its position row's columns (null without one) and its pending count. */
export interface WebhookStatsRow {
  id: string;
  tracked: Int;
  pending: Int;
  delivered: Int | null;
  dead: Int | null;
  attempts: Int | null;
  next_at: Int | null;
  last_error: string | null;
}

export function toWebhookStats(rows: readonly WebhookStatsRow[]): Map<string, WebhookStats> {
  return new Map(
    rows.map((r) => [
      r.id,
      {
        pending: Number(r.pending),
        dead: Number(r.dead ?? 0),
        delivered: Number(r.delivered ?? 0),
        attempts: Number(r.attempts ?? 0),
        nextAttemptAt:
          r.next_at === null || Number(r.attempts ?? 0) === 0 ? null : new Date(Number(r.next_at)).toISOString(),
        lastError: r.last_error,
        tracked: Number(r.tracked) === 1,
      },
    ]),
  );
}
