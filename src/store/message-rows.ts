/**
 * What both backends share about messages and events: the data keys that bind sealed message content
 * to its row, and the mapping of a joined event row to a StoredEvent. Schema (both backends, one
 * migration each):
 *
 * - `wa_messages`: one row per session + chat + sender + message id (the primary key: WhatsApp delivers
 *   a message again after a reconnect, or as a re-sent stanza, and it is kept once). `direction` is 'in'
 *   for messages from others and 'out' for the account's own (sent from its other devices now; the
 *   outbox, a table of its own beside this one, will add what wa sends). `text` and `raw` are the only
 *   content columns, and the only ones SealedStore seals.
 * - `wa_events`: the append-only log. `cursor` is its position (SQLite INTEGER PRIMARY KEY AUTOINCREMENT,
 *   PostgreSQL BIGINT identity: never reused, even after pruning). A `message` event points at its
 *   message by the same key and is written in the same transaction as it; other events carry their
 *   fields in `data` (JSON without message content).
 */
import type { IncomingMessage, MessageEvent, MessageKind, OutgoingStatus, SessionState, StoredEvent } from './types.js';

/**
 * An event as programs get it (README "Receiving messages", "Webhooks": `wa listen --json`, a webhook's
 * body, `GET /events`, the library's `events()`): the stored fields as they are, and a message's `raw` the
 * WAMessage as a JSON object, not a string holding JSON. Buffers in it are as BufferJSON wrote them
 * (`{"type":"Buffer","data":"<base64>"}`), so `BufferJSON.reviver` turns it back into a WAMessage.
 */
export type EventJson =
  | Exclude<StoredEvent, MessageEvent>
  | (Omit<MessageEvent, 'raw'> & { raw: Record<string, unknown> });

export function eventJson(event: StoredEvent): EventJson {
  if (event.type !== 'message') return { ...event };
  return { ...event, raw: JSON.parse(event.raw) as Record<string, unknown> };
}

/** The data key under which a message's `text` or `raw` is sealed (the AAD binds it to this very row). */
export const messageDataKey = (field: 'text' | 'raw', chat: string, from: string, id: string): string =>
  `message:${field}:${JSON.stringify([chat, from, id])}`;

/** A row of the event query: the event's columns, and its message's when it is a `message` event. */
export interface EventRow {
  cursor: string | number | bigint;
  session_id: string;
  at: string;
  type: string;
  chat: string | null;
  sender: string | null;
  message_id: string | null;
  replay: number | boolean | null;
  data: string | null;
  from_me: number | boolean | null;
  push_name: string | null;
  sent_at: string | null;
  kind: string | null;
  text: string | null;
  raw: string | null;
}

/** Maps a joined row; a `message` event whose message row is gone (pruned in between) maps to undefined. */
export function toStoredEvent(row: EventRow): StoredEvent | undefined {
  const base = { cursor: String(row.cursor), session: row.session_id, at: row.at };
  const data = row.data ? (JSON.parse(row.data) as Record<string, unknown>) : {};
  switch (row.type) {
    case 'message':
      if (row.raw === null || row.kind === null) return undefined;
      return {
        ...base,
        type: 'message',
        id: row.message_id ?? '',
        chat: row.chat ?? '',
        from: row.sender ?? '',
        fromMe: Boolean(row.from_me),
        name: row.push_name,
        sentAt: row.sent_at,
        kind: row.kind as MessageKind,
        text: row.text,
        replay: Boolean(row.replay),
        raw: row.raw,
      };
    case 'undecryptable':
      return { ...base, type: 'undecryptable', id: row.message_id ?? '', chat: row.chat ?? '', from: row.sender ?? '' };
    case 'connection':
      return {
        ...base,
        type: 'connection',
        connection: data.connection === 'open' ? 'open' : 'closed',
        code: typeof data.code === 'number' ? data.code : null,
        reason: typeof data.reason === 'string' ? data.reason : null,
      };
    case 'state':
      return { ...base, type: 'state', state: data.state as SessionState };
    case 'status':
      return {
        ...base,
        type: 'status',
        id: row.message_id ?? '',
        chat: row.chat ?? '',
        status: data.status as OutgoingStatus,
        code: typeof data.code === 'string' ? data.code : null,
      };
    default:
      return undefined; // a type a newer wa writes: readers ignore what they do not know
  }
}

/** The `data` column of a non-message event. */
export function eventData(event: { type: string } & Record<string, unknown>): string | null {
  if (event.type === 'connection')
    return JSON.stringify({ connection: event.connection, code: event.code, reason: event.reason });
  if (event.type === 'state') return JSON.stringify({ state: event.state });
  return null;
}

/** The direction column: the account's own messages (from its other devices) go out, the rest came in. */
export const directionOf = (message: IncomingMessage): 'in' | 'out' => (message.fromMe ? 'out' : 'in');
