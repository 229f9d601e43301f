import { systemClock } from '../clock.js';
import { type LogLevel } from '../config.js';
import type { HttpAddress } from '../daemon/http.js';
import { startHttp } from '../daemon/http.js';
import { Metrics } from '../daemon/metrics.js';
import { startRetention } from '../daemon/retention.js';
import { Supervisor } from '../daemon/supervisor.js';
import { baileysSocketFactory, createLogger, loadBaileys } from '../session/baileys.js';
import { newOwner } from '../session/lease.js';
import { sessionView } from '../session/session-view.js';
import { unlockValues } from '../store/sealed.js';
import { prettyLines } from '../terminal/log-format.js';
import { requireSession } from './common.js';
import type { Context } from './context.js';

export interface ServeOptions {
  /** `--http [host:]port`, parsed at the edge. */
  http?: HttpAddress | undefined;
}

/** Baileys logs every connect at info; with hundreds of sessions that drowns wa's own lines, so it gets warn unless asked for more. */
const baileysLevel = (level: LogLevel): LogLevel =>
  level === 'debug' || level === 'trace' || level === 'silent' || level === 'error' || level === 'fatal'
    ? level
    : 'warn';

/**
 * `wa serve [id…]`: the foreground daemon. Keeps every paired session it can own connected until the first
 * SIGINT/SIGTERM, then closes each socket without logging out, waits for key writes, releases its leases
 * and returns (exit 0). bin/wa.js turns a second signal into exit 130.
 */
export async function serve(ctx: Context, ids: string[], options: ServeOptions): Promise<void> {
  const address =
    options.http ?? (ctx.config.port === undefined ? undefined : { host: '0.0.0.0', port: ctx.config.port });
  const store = await ctx.openStore('write');
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
    const owner = newOwner('serve', ctx.host, ctx.pid);
    const openSocket = baileysSocketFactory(baileys, ctx.config, {
      onStored: (count) => metrics.messagesReceived(count),
      onUndecryptable: (count) => metrics.messagesUndecryptable(count),
      logger,
    });
    const supervisor = new Supervisor({
      store,
      openSocket,
      logger,
      baileysLogger,
      timing: ctx.config.timing,
      metrics,
      clock: systemClock,
      owner,
      only: ids,
    });

    const http = address
      ? await startHttp(
          address,
          {
            ready: () => {
              const owned = supervisor.owned();
              const notOpen = owned.filter((s) => s.connection !== 'open').map((s) => s.id);
              const ready = notOpen.length === 0;
              return Promise.resolve({ ready, body: { ready, owned: owned.length, notOpen } });
            },
            sessions: async () => ({ db: store.location, sessions: (await store.listSessions()).map(sessionView) }),
            metrics: async () => metrics.render((await store.listSessions()).map(sessionView)),
          },
          ctx.config.apiToken,
        )
      : undefined;

    logger.info(
      { owner: owner.ownerId, db: store.location, http: http?.url, sessions: ids.length > 0 ? ids : 'all paired' },
      'wa serve started',
    );
    const retention = startRetention(store, ctx.config.keepDays, logger);
    await supervisor.start();
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    logger.info('stopping: closing sessions without logging out');
    const started = Date.now();
    await supervisor.stop();
    await openSocket.settle(15_000); // messages flushed by sockets WhatsApp closed are stored before the store closes
    await retention.stop();
    http?.closeAllConnections();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    logger.info({ ms: Date.now() - started }, 'wa serve stopped');
  } finally {
    await store.close();
  }
}
