import { createRequire } from 'node:module';
import { ExitCode, isWaError, type ExitCode as ExitCodeType } from '../errors.js';
import { isPostgresUrl } from '../db-url.js';
import { baileysSocketFactory, createLogger, loadBaileys } from '../session/baileys.js';
import { untilOpenOrClosed } from '../session/connection.js';
import { SessionAuth } from '../session/session-auth.js';
import { describeOwner } from '../session/session-view.js';
import { databaseFilesystem } from '../store/filesystem.js';
import { unlockValues } from '../store/sealed.js';
import type { SessionStore } from '../store/types.js';
import type { Context } from './context.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  message: string;
  hint: string | null;
  /** For a failure: the exit-code class it belongs to (the first failure decides the exit code). */
  exitCode?: ExitCodeType;
}

const ok = (name: string, message: string): Check => ({ name, status: 'ok', message, hint: null });
const warn = (name: string, message: string, hint: string | null = null): Check => ({
  name,
  status: 'warn',
  message,
  hint,
});
const fail = (name: string, message: string, hint: string | null, exitCode: ExitCodeType): Check => ({
  name,
  status: 'fail',
  message,
  hint,
  exitCode,
});

/**
 * `wa doctor`: checks the setup and says what to fix. Each check is ok, warn or fail with a hint; an
 * unpaired session or an unset WA_SECRET is never a failure. Exit 0 without failures, otherwise the exit
 * code of the first failing check's class (2 config, 4 unreachable, 5 storage).
 */
export async function doctor(ctx: Context): Promise<ExitCodeType> {
  const checks: Check[] = [checkNode(ctx), checkDriver()];
  let store: SessionStore | undefined;
  try {
    store = await ctx.openStore('read');
    checks.push(...checkDatabase(ctx, store));
  } catch (error) {
    checks.push(fail('database', errorText(error), `check --db / WA_DB (${ctx.config.db})`, exitOf(error)));
  }
  if (!isPostgresUrl(ctx.config.db)) {
    const fs = databaseFilesystem(ctx.config.db);
    checks.push(
      fs?.warning
        ? warn('filesystem', fs.warning, 'mount a persistent volume and set WA_DB to a path on it')
        : ok('filesystem', fs ? `${fs.type} at ${fs.mountPoint}` : 'not checked (no /proc/self/mountinfo)'),
    );
  }
  if (store) {
    checks.push(await checkSecret(ctx, store));
    checks.push(...(await checkSessions(store)));
    await store.close();
  }
  checks.push(checkHttp(ctx));
  if (ctx.config.webhook) checks.push(checkWebhook(ctx.config.webhook));
  checks.push(await checkWhatsApp(ctx));

  if (ctx.out.json) ctx.out.data({ checks: checks.map(({ exitCode: _, ...check }) => check) });
  else ctx.out.result(render(checks));
  return checks.find((c) => c.status === 'fail')?.exitCode ?? ExitCode.ok;
}

function checkNode(ctx: Context): Check {
  void ctx;
  const major = Number(/^v(\d+)/.exec(process.version)?.[1]);
  return major >= 20
    ? ok('node', `Node.js ${process.version}`)
    : fail('node', `Node.js ${process.version} is too old`, 'install Node.js 20 or newer', ExitCode.usage);
}

function checkDriver(): Check {
  try {
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => {
      prepare(sql: string): { pluck(): { get(): unknown } };
      close(): void;
    };
    const db = new Database(':memory:');
    const version = db.prepare('SELECT sqlite_version()').pluck().get();
    db.close();
    return ok('sqlite-driver', `better-sqlite3 loads (SQLite ${String(version)})`);
  } catch (error) {
    return fail(
      'sqlite-driver',
      `better-sqlite3 does not load: ${errorText(error)}`,
      'reinstall with build tools present (python3, make, g++): npm ci',
      ExitCode.storage,
    );
  }
}

function checkDatabase(ctx: Context, store: SessionStore | undefined): Check[] {
  if (!store) {
    return [warn('database', `${ctx.config.db} does not exist yet`, 'it is created on first use: wa add <id>')];
  }
  // Opening migrates an older schema and refuses a newer one (exit 5), so an open store has the current one.
  const checks = [ok('database', `${store.location} opens (${store.backend}, schema current)`)];
  const exposed = store.permissionWarning();
  if (exposed) checks.push(warn('file-modes', exposed, null));
  else if (store.backend === 'sqlite') checks.push(ok('file-modes', 'readable by its owner only'));
  return checks;
}

async function checkSecret(ctx: Context, store: SessionStore): Promise<Check> {
  try {
    await unlockValues(store);
  } catch (error) {
    return fail('secret', errorText(error), isWaError(error) ? (error.hint ?? null) : null, exitOf(error));
  }
  if (ctx.config.secret !== undefined) return ok('secret', 'WA_SECRET opens the stored values');
  return warn(
    'secret',
    'values are stored in clear (WA_SECRET is not set)',
    'WA_NEW_SECRET=<secret> wa rekey, then set WA_SECRET',
  );
}

async function checkSessions(store: SessionStore): Promise<Check[]> {
  const sessions = await store.listSessions();
  const by = (state: string): string[] => sessions.filter((s) => s.state === state).map((s) => s.id);
  const checks: Check[] = [];
  const paired = by('paired');
  checks.push(
    ok(
      'sessions',
      sessions.length === 0
        ? 'no sessions yet'
        : `${sessions.length} session(s): ${paired.length} paired, ${by('unpaired').length} unpaired`,
    ),
  );
  for (const state of ['logged_out', 'replaced'] as const) {
    const ids = by(state);
    if (ids.length > 0) {
      checks.push(
        warn(
          `sessions-${state.replace('_', '-')}`,
          `${state}: ${ids.join(', ')}`,
          `wa connect ${ids[0]!} (pairs it again)`,
        ),
      );
    }
  }
  const owned = sessions.filter((s) => s.lease);
  checks.push(
    ok(
      'leases',
      owned.length === 0
        ? 'no session is in use'
        : owned.map((s) => `'${s.id}' by ${describeOwner(s.lease!)}`).join('; '),
    ),
  );
  for (const id of store.skippedIds) {
    checks.push(
      warn('adoption', `whatsapp_auth holds data for ${JSON.stringify(id)}, not a valid session id: not adopted`),
    );
  }
  return checks;
}

function checkHttp(ctx: Context): Check {
  if (ctx.config.port === undefined) return ok('http', 'PORT is not set: wa serve opens HTTP only with --http');
  return ctx.config.apiToken === undefined
    ? warn(
        'http',
        `PORT=${ctx.config.port}: wa serve listens on 0.0.0.0 without WA_API_TOKEN, so it serves /healthz only`,
        'set WA_API_TOKEN to use /sessions, /metrics and the other routes',
      )
    : ok('http', `PORT=${ctx.config.port} with WA_API_TOKEN`);
}

/** README "Webhooks": where events go. Plain http beyond this host carries message text unencrypted. */
export function checkWebhook(webhook: NonNullable<Context['config']['webhook']>): Check {
  const url = new URL(webhook.url);
  const events = webhook.events ? webhook.events.join(', ') : 'every event type';
  const loopback = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i.test(url.hostname);
  if (url.protocol === 'http:' && !loopback) {
    return warn(
      'webhook',
      `wa serve posts ${events} to ${url.origin} over plain http: message text travels unencrypted`,
      'use an https:// WA_WEBHOOK_URL',
    );
  }
  return ok('webhook', `wa serve posts ${events} to ${url.origin}, signed with WA_WEBHOOK_SECRET`);
}

/**
 * A Noise handshake with WhatsApp (or --ws-url), with wa's identity checks: a fresh, unregistered
 * identity kept in memory, closed at the first sign of a verified server (a QR reference), so nothing is
 * logged in and nothing stored.
 */
async function checkWhatsApp(ctx: Context): Promise<Check> {
  const target = ctx.config.wsUrl ?? 'WhatsApp';
  try {
    const baileys = await loadBaileys();
    const logger = await createLogger('silent', ctx.out.stderr);
    ctx.processLog.logTo(logger);
    // A database of its own, in memory: the handshake must not touch the real one.
    const { SqliteStore } = await import('../store/sqlite.js'); // loaded here: the driver check reports on it first
    const scratch = new SqliteStore(':memory:');
    await scratch.createSession('doctor', null);
    const auth = SessionAuth.inMemory(baileys.initAuthCreds(), scratch, 'doctor');
    const socket = baileysSocketFactory(baileys, {
      wsUrl: ctx.config.wsUrl,
      timing: { ...ctx.config.timing, connectTimeoutMs: 10_000 },
    })(auth, logger);
    const outcome = await untilOpenOrClosed(socket, {
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(15_000)]),
      onUpdate: (update, done) => {
        if (update.qr) done(undefined);
      },
    });
    await socket.end();
    await scratch.close();
    if (outcome.kind === 'failed' || outcome.kind === 'open') {
      return ok('whatsapp', `${target} answered with a verified identity`);
    }
    if (outcome.kind === 'stopped') {
      return fail(
        'whatsapp',
        `${target} did not answer within 15s`,
        'check the network, or --ws-url / WA_WS_URL',
        ExitCode.unavailable,
      );
    }
    const { reason, detail } = outcome.disconnect;
    return fail(
      'whatsapp',
      `${target}: ${detail ? `${reason}: ${detail}` : reason}`,
      reason.includes('identity')
        ? 'this is not a genuine WhatsApp server: check --ws-url / WA_WS_URL'
        : 'check the network, or --ws-url / WA_WS_URL',
      ExitCode.unavailable,
    );
  } catch (error) {
    return fail('whatsapp', errorText(error), null, exitOf(error));
  }
}

function render(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  return checks
    .map((c) => {
      const line = `${c.status.padEnd(4)}  ${c.name.padEnd(width)}  ${c.message}`;
      return c.hint ? `${line}\n${' '.repeat(width + 8)}Try: ${c.hint}` : line;
    })
    .join('\n');
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const exitOf = (error: unknown): ExitCodeType => (isWaError(error) ? error.exitCode : ExitCode.storage);
