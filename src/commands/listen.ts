/**
 * `wa listen [id…] [--since <cursor>] [--follow] [--limit <n>]`: prints stored events oldest first (README
 * "Receiving messages"), NDJSON with --json, one readable line each otherwise. Read-only: no lease, no socket, so it
 * runs beside a live `wa serve` on the same database (and never loads Baileys, protobufjs or pino).
 * `--follow` then polls for new events until Ctrl-C: on SQLite `max(cursor)` is one b-tree lookup, and
 * events are only read when it moved; PostgreSQL is polled the same way for now.
 */
import { usageError } from '../errors.js';
import { eventJson } from '../store/message-rows.js';
import type { StoredEvent } from '../store/types.js';
import { printable } from '../terminal/log-format.js';
import { requireSession } from './common.js';
import type { Context } from './context.js';

export interface ListenOptions {
  /** Only events after this cursor (exclusive): a decimal string, validated at the edge. */
  since?: string | undefined;
  follow?: boolean | undefined;
  /** Print at most this many events in all (also with --follow), then exit 0. */
  limit?: number | undefined;
}

/** How often --follow looks for new events. */
export const FOLLOW_POLL_MS = 300;
/** Events read per query, so a long log is streamed rather than loaded whole. */
const PAGE = 500;

export async function listen(ctx: Context, ids: string[], options: ListenOptions): Promise<void> {
  const store = await ctx.openStore('read');
  if (!store) {
    // No database yet: no session exists, and no event.
    if (ids.length > 0)
      throw usageError('E_SESSION_UNKNOWN', `no session '${ids[0]}' in ${ctx.config.db}`, { hint: `wa add ${ids[0]}` });
    return;
  }
  try {
    for (const id of ids) await requireSession(store, id);
    let cursor = options.since ?? '0';
    let left = options.limit ?? Infinity;
    const print = (event: StoredEvent): void => {
      if (ctx.out.json) ctx.out.data(toJson(event));
      else ctx.out.result(describeEvent(event));
    };
    // Prints every stored event after `cursor`, page by page; false once the limit is reached.
    const drain = async (): Promise<boolean> => {
      for (;;) {
        if (left <= 0) return false;
        const events = await store.readEvents({ since: cursor, sessions: ids, limit: Math.min(PAGE, left) });
        for (const event of events) {
          print(event);
          cursor = event.cursor;
          left--;
        }
        if (events.length < PAGE) return left > 0;
      }
    };
    if (!(await drain()) || !options.follow) return;
    let seen = await store.lastCursor();
    while (!ctx.signal.aborted) {
      await sleep(FOLLOW_POLL_MS, ctx.signal);
      if (ctx.signal.aborted) break;
      const last = await store.lastCursor();
      if (last === seen) continue;
      seen = last;
      if (!(await drain())) return;
    }
  } finally {
    await store.close();
  }
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** The documented shape (also every webhook's body): see eventJson. */
export const toJson = eventJson;

/**
 * One line for people: `2026-01-02 03:04:05  bot  ← 15550001111@s.whatsapp.net (Ada)  hello`. Everything
 * that came from WhatsApp (names, text, jids) goes through printable(), so no escape sequence reaches the
 * terminal and a message is always exactly one line.
 */
export function describeEvent(event: StoredEvent): string {
  const time = event.at.slice(0, 19).replace('T', ' ');
  const head = `${time}  ${event.session}`;
  switch (event.type) {
    case 'message': {
      const peer = printable(event.fromMe ? event.chat : event.from);
      const where = event.chat !== event.from && !event.fromMe ? ` in ${printable(event.chat)}` : '';
      const name = event.name && !event.fromMe ? ` (${printable(event.name)})` : '';
      const body =
        event.kind === 'text'
          ? printable(event.text ?? '')
          : `[${event.kind}]${event.text !== null ? ` ${printable(event.text)}` : ''}`;
      return `${head}  ${event.fromMe ? '→' : '←'} ${peer}${name}${where}  ${body}${event.replay ? '  (offline)' : ''}`;
    }
    case 'undecryptable':
      return `${head}  ! ${printable(event.from)}  could not decrypt message ${printable(event.id)}`;
    case 'connection':
      return `${head}  connection ${event.connection}${event.code !== null ? ` (${event.code} ${printable(event.reason ?? '')})` : ''}`;
    case 'state':
      return `${head}  state ${event.state}`;
    case 'status':
      return `${head}  → ${printable(event.chat)}  ${printable(event.id)} ${event.status}${event.code !== null ? ` (${printable(event.code)})` : ''}`;
  }
}
