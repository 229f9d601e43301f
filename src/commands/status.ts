import type { Context } from './context.js';
import { table } from '../terminal/output.js';
import { ExitCode, storageError, usageError, type ExitCode as ExitCodeType } from '../errors.js';
import type { OutboxCounts, SessionRecord } from '../store/types.js';
import { corruptMessage, sessionView, type SessionView } from '../session/session-view.js';

/**
 * `wa status [id]`. With an id: exit 0 when paired, 3 otherwise, so scripts can branch on it. A session
 * whose stored creds are corrupt is still shown (the others too), and the command then fails with exit 5.
 */
export async function status(ctx: Context, id: string | undefined): Promise<ExitCodeType> {
  const store = await ctx.openStore('read');
  let sessions: SessionRecord[];
  let outbox = new Map<string, OutboxCounts>();
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
    // A read-only copy of a database older than the outbox (schema v4) has no outbox to count.
    if (store) outbox = await store.outboxCounts().catch(() => outbox);
  } finally {
    await store?.close();
  }

  // `outbox` only where messaging is in use: sessions with messages waiting (queued) or ambiguous (unknown).
  const views = sessions.map((session) => {
    const counts = outbox.get(session.id);
    return counts ? { ...sessionView(session), outbox: counts } : sessionView(session);
  });
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

function renderTable(views: SessionView[]): string {
  return table(
    ['ID', 'STATE', 'CONNECTION', 'PHONE', 'NAME', 'OWNER', 'LAST DISCONNECT'],
    views.map((v) => [
      v.id,
      v.error ? 'corrupt' : v.state,
      v.connection,
      v.phone ?? '-',
      v.name ?? '-',
      ownerText(v),
      disconnectText(v),
    ]),
  );
}

function renderOne(v: SessionView & { outbox?: OutboxCounts }): string {
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
  if (v.error) rows.push(['error', v.error]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, val]) => `${`${k}:`.padEnd(width + 2)}${val}`).join('\n');
}
