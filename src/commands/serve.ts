import { settleBy, systemClock } from '../clock.js';
import type { HttpAddress } from '../daemon/http.js';
import { sharedRead, startHttp } from '../daemon/http.js';
import { messageRoutes } from '../daemon/http-messages.js';
import { Metrics } from '../daemon/metrics.js';
import { Pairings } from '../daemon/pairing.js';
import { sessionApi } from '../daemon/session-api.js';
import { SessionManager } from '../daemon/session-manager.js';
import { baileysLevel, createLogger, loadBaileys } from '../session/baileys.js';
import { newOwner } from '../session/lease.js';
import { statusViews } from '../session/session-view.js';
import { databaseFilesystem } from '../store/filesystem.js';
import { unlockValues } from '../store/sealed.js';
import { prettyLines } from '../terminal/log-format.js';
import { requireSession } from '../session/registry.js';
import type { Context } from './context.js';

/** A pairing over HTTP not done after this long is given up, as `wa connect`'s default timeout. */
const PAIRING_TIMEOUT_MS = 180_000;

/** How long one read of the sessions answers /sessions and /metrics. */
const SESSIONS_CACHE_MS = 1000;

export interface ServeOptions {
  /** `--http [host:]port`, parsed at the edge. */
  http?: HttpAddress | undefined;
}

/**
 * How long a graceful stop may take (README "The daemon": exit 0 within 10 s, even with the database hanging): each
 * query can otherwise wait for the pool's 30 s timeout. Past it, serve stops waiting for lease releases
 * and key writes; the leases then expire on their own (TTL).
 */
export const SHUTDOWN_DEADLINE_MS = 6_000;
/** What is left after the deadline for closing the store (a hanging pool never ends). */
const STORE_CLOSE_GRACE_MS = 1_000;

/**
 * `wa serve [id…]`: the foreground daemon. Keeps every paired session it can own connected until the first
 * SIGINT/SIGTERM, then closes each socket without logging out, waits for key writes, releases its leases
 * and returns (exit 0). bin/wa.js turns a second signal into exit 130.
 */
export async function serve(ctx: Context, ids: string[], options: ServeOptions): Promise<void> {
  const address =
    options.http ?? (ctx.config.port === undefined ? undefined : { host: '0.0.0.0', port: ctx.config.port });
  const store = await ctx.openStore('write');
  let closeBy = Infinity;
  try {
    await unlockValues(store); // a missing or wrong WA_SECRET fails now, before any lease is taken
    for (const id of ids) {
      const session = await requireSession(store, id);
      if (session.state !== 'paired')
        ctx.out.warn(`session '${id}' is ${session.state}; it will be served once paired (wa connect ${id})`);
    }
    const level = ctx.config.logLevel ?? 'info';
    const destination = ctx.out.stdout.isTTY ? prettyLines(ctx.out.stdout) : ctx.out.stdout;
    const logger = await createLogger(level, destination);
    const baileysLogger = logger.child({ component: 'baileys' }, { level: baileysLevel(level) });
    ctx.processLog.logTo(baileysLogger);
    const baileys = await loadBaileys();
    const metrics = new Metrics(() => ctx.processLog.rejections);
    metrics.monitorEventLoop();
    const owner = newOwner('serve', ctx.host, ctx.pid);
    const manager = new SessionManager({
      store,
      baileys,
      wsUrl: ctx.config.wsUrl,
      timing: ctx.config.timing,
      keepDays: ctx.config.keepDays,
      logger,
      baileysLogger,
      owner,
      only: ids,
      metrics,
      webhook: ctx.config.webhook,
      // Leaves a session alone while it is being paired here (called only once the supervisor runs).
      skip: (id): boolean => pairing.isPairing(id),
    });
    const { supervisor, openSocket, webhooks } = manager;
    const pairing = new Pairings({
      store,
      openSocket,
      logger,
      baileysLogger,
      timing: ctx.config.timing,
      owner,
      // The lease is already ours: the supervisor's next look takes the session and keeps it connected.
      onPaired: () => supervisor.pickUp(),
      timeoutMs: PAIRING_TIMEOUT_MS,
    });

    // /sessions and /metrics share one read of the sessions, at most one a second however many requests
    // come: the same store (and PostgreSQL pool) renews the leases, and a flood must not starve that.
    const webhookTypes = ctx.config.webhook && { types: ctx.config.webhook.events };
    const sessionViews = sharedRead(
      async () => statusViews(store, await store.listSessions(), webhookTypes),
      SESSIONS_CACHE_MS,
      systemClock,
    );
    const outboxTotals = sharedRead(() => store.outboxTotals(), SESSIONS_CACHE_MS, systemClock);
    // Sending, messages and the event log (README "HTTP API"): any daemon accepts, the owner sends.
    const messages = messageRoutes({
      store,
      desk: (through) => manager.desk.with(through),
      sessionIds: async () => (await sessionViews()).map((view) => view.id),
    });
    const http = address
      ? await startHttp(
          address,
          {
            ready: () => {
              const readiness = supervisor.readiness();
              return Promise.resolve({ ready: readiness.ready, body: readiness });
            },
            // `waiting`: sessions another live owner holds (an old deployment still stopping), taken once released.
            sessions: async () => {
              const active = pairing.active();
              const views = (await sessionViews()).map((view) =>
                active.has(view.id) ? { ...view, pairing: active.get(view.id) } : view,
              );
              return { db: store.location, sessions: views, waiting: supervisor.waiting() };
            },
            metrics: async () => metrics.render(await sessionViews(), await outboxTotals(), await webhooks?.stats()),
            messages,
            api: sessionApi({ store, pairing, supervisor, only: ids }),
          },
          { token: ctx.config.apiToken, onError: (err: unknown) => logger.error({ err }, 'HTTP route failed') },
        )
      : undefined;
    if (http?.exposure === 'public' && ctx.config.apiToken === undefined) {
      logger.warn({ http: http.url }, 'HTTP on a non-loopback address without WA_API_TOKEN: only /healthz is served');
    }

    // The failure this project was born from: a login kept where a redeploy wipes it (or where SQLite is unsafe).
    const filesystem = store.backend === 'sqlite' ? databaseFilesystem(ctx.config.db) : undefined;
    if (filesystem?.warning)
      logger.warn({ filesystem: filesystem.type, mountPoint: filesystem.mountPoint }, filesystem.warning);
    logger.info(
      { owner: owner.ownerId, db: store.location, http: http?.url, sessions: ids.length > 0 ? ids : 'all paired' },
      'wa serve started',
    );
    await manager.start();
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    logger.info('stopping: closing sessions without logging out');
    messages.close(); // long-polls and waiting sends answer now, while the store is still open
    const started = Date.now();
    const deadlineAt = systemClock.monotonic() + SHUTDOWN_DEADLINE_MS;
    closeBy = deadlineAt + STORE_CLOSE_GRACE_MS;
    // Messages flushed by sockets WhatsApp closed are stored before the store closes.
    if (!(await settleBy(manager.stop([pairing.stop()], SHUTDOWN_DEADLINE_MS), deadlineAt)))
      logger.warn(
        { ms: Date.now() - started },
        'the database did not answer in time; stopping without waiting (leases expire on their own)',
      );
    http?.closeAllConnections();
    await settleBy(new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve())), deadlineAt);
    metrics.stopEventLoopMonitor();
    logger.info({ ms: Date.now() - started }, 'wa serve stopped');
  } finally {
    if (closeBy === Infinity) await store.close();
    else await settleBy(store.close(), closeBy);
  }
}
