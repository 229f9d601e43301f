/**
 * `wa listen [id…] [--since <cursor>] [--follow] [--limit <n>]`: prints stored events oldest first (README
 * "Receiving messages"), NDJSON with --json, one readable line each otherwise. Read-only: no lease, no socket, so it
 * runs beside a live `wa serve` on the same database (and never loads Baileys, protobufjs or pino).
 * `--follow` then waits for new events until Ctrl-C (src/session/event-feed.ts).
 */
import { usageError } from '../errors.js';
import { EVENT_PAGE, eventFeed, eventJson } from '../session/event-feed.js';
import type { StoredEvent } from '../store/types.js';
import { printable } from '../terminal/log-format.js';
import { requireSession } from '../session/registry.js';
import type { Context } from './context.js';

export interface ListenOptions {
  /** Only events after this cursor (exclusive): a decimal string, validated at the edge. */
  since?: string | undefined;
  follow?: boolean | undefined;
  /** Print at most this many events in all (also with --follow), then exit 0. */
  limit?: number | undefined;
}

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
    let left = options.limit ?? Infinity;
    if (left <= 0) return;
    for await (const event of eventFeed(store, {
      since: options.since,
      sessions: ids,
      follow: options.follow,
      signal: ctx.signal,
      pageSize: Math.min(EVENT_PAGE, left),
    })) {
      if (ctx.out.json) ctx.out.data(eventJson(event));
      else ctx.out.result(describeEvent(event));
      if (--left <= 0) return;
    }
  } finally {
    await store.close();
  }
}

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
