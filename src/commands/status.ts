import type { Context } from './context.js';
import { table } from '../terminal/output.js';
import { ExitCode, storageError, usageError, type ExitCode as ExitCodeType } from '../errors.js';
import type { SessionRecord } from '../store/types.js';
import {
  corruptMessage,
  sessionView,
  statusViews,
  type SessionView,
  type StatusView,
} from '../session/session-view.js';

/**
 * `wa status [id]`. With an id: exit 0 when paired, 3 otherwise, so scripts can branch on it. A session
 * whose stored creds are corrupt is still shown (the others too), and the command then fails with exit 5.
 */
export async function status(ctx: Context, id: string | undefined): Promise<ExitCodeType> {
  const store = await ctx.openStore('read');
  let sessions: SessionRecord[];
  let views: StatusView[] = [];
  try {
    if (id === undefined) {
      sessions = store ? await store.listSessions() : [];
      for (const skipped of store?.skippedIds ?? []) {
        ctx.out.warn(
          `whatsapp_auth holds data for ${JSON.stringify(skipped)}, which is not a valid session id: not adopted`,
        );
      }
    } else {
      const session = await store?.getSession(id);
      if (!session) {
        throw usageError('E_SESSION_UNKNOWN', `no session '${id}' in ${store?.location ?? ctx.config.db}`, {
          hint: `wa add ${id}`,
        });
      }
      sessions = [session];
    }
    if (store) {
      const webhook = ctx.config.webhook;
      views = await statusViews(store, sessions, webhook && { types: webhook.events });
    } else views = sessions.map(sessionView);
  } finally {
    await store?.close();
  }

  if (id === undefined) {
    if (ctx.out.json) ctx.out.data({ db: store?.location ?? ctx.config.db, sessions: views });
    else ctx.out.result(views.length === 0 ? `No sessions yet. Add one: wa add my-bot` : renderTable(views));
  } else {
    const view = views[0]!;
    if (ctx.out.json) ctx.out.data(view);
    else ctx.out.result(renderOne(view));
  }

  const corrupt = sessions.filter((s) => s.corruptKey !== null);
  if (corrupt.length > 0) {
    throw storageError('E_CORRUPT', corrupt.map(corruptMessage).join('; '), {
      hint: `wa logout ${corrupt[0]!.id} --force, then pair it again with wa connect ${corrupt[0]!.id}`,
    });
  }
  if (id !== undefined) return sessions[0]!.state === 'paired' ? ExitCode.ok : ExitCode.notPaired;
  return ExitCode.ok;
}

/** `3 pending, 1 dead, failing (4 attempts): HTTP 500`; the last error only while the current event fails. */
function webhookText(w: NonNullable<StatusView['webhook']>): string {
  const parts = [`${w.pending} pending`];
  if (w.dead > 0) parts.push(`${w.dead} dead`);
  let text = parts.join(', ');
  if (w.attempts > 0) text += `, failing (${w.attempts} attempt${w.attempts === 1 ? '' : 's'}): ${w.lastError ?? '?'}`;
  return text;
}

function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const ownerText = (v: SessionView): string => (v.owner ? `${v.owner.host}:${v.owner.pid}` : '-');
const disconnectText = (v: SessionView): string =>
  v.lastDisconnect ? `${v.lastDisconnect.code ?? '-'} ${v.lastDisconnect.reason} (${ago(v.lastDisconnect.at)})` : '-';

function renderTable(views: StatusView[]): string {
  // The WEBHOOK column only where webhooks are in use, before the last (free-length) column.
  const hooks = views.some((v) => v.webhook);
  return table(
    ['ID', 'STATE', 'CONNECTION', 'PHONE', 'NAME', 'OWNER', ...(hooks ? ['WEBHOOK'] : []), 'LAST DISCONNECT'],
    views.map((v) => [
      v.id,
      v.error ? 'corrupt' : v.state,
      v.connection,
      v.phone ?? '-',
      v.name ?? '-',
      ownerText(v),
      ...(hooks ? [v.webhook ? webhookText(v.webhook) : '-'] : []),
      disconnectText(v),
    ]),
  );
}

function renderOne(v: StatusView): string {
  const rows: Array<[string, string]> = [
    ['id', v.id],
    ['label', v.label ?? '-'],
    ['state', v.state],
    ['phone', v.phone ?? '-'],
    ['name', v.name ?? '-'],
    ['jid', v.jid ?? '-'],
    ['connection', v.connection],
    ['owner', v.owner ? `${v.owner.id} (host ${v.owner.host}, pid ${v.owner.pid}, until ${v.owner.expiresAt})` : '-'],
    ['created', v.createdAt ?? '-'],
    ['paired', v.pairedAt ?? '-'],
    ['last connected', v.lastConnectedAt ? `${v.lastConnectedAt} (${ago(v.lastConnectedAt)})` : '-'],
    ['last disconnect', disconnectText(v)],
  ];
  if (v.outbox) rows.push(['outbox', `${v.outbox.queued} queued, ${v.outbox.unknown} unknown`]);
  if (v.webhook) {
    rows.push(['webhook', `${webhookText(v.webhook)}; ${v.webhook.delivered} delivered`]);
    if (v.webhook.nextAttemptAt) rows.push(['webhook retry', v.webhook.nextAttemptAt]);
    if (v.webhook.lastError && v.webhook.attempts === 0) rows.push(['webhook last error', v.webhook.lastError]);
  }
  if (v.error) rows.push(['error', v.error]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, val]) => `${`${k}:`.padEnd(width + 2)}${val}`).join('\n');
}
