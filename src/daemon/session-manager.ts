/**
 * The session manager `wa serve` runs and the library's `startSessions()` embeds (README "The daemon",
 * "Library"): one supervisor keeping every session it may own connected (leases, pacing, backoff,
 * watchdog), sockets that store every received message and drain their outbox, retention, and the desk
 * that accepts messages to send. The edges around it differ — serve adds HTTP, pairing and logs; the
 * library adds an API — the manager is the same.
 */
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Timing, WebhookConfig } from '../config.js';
import { baileysSocketFactory, type Baileys, type BaileysSocketFactory } from '../session/baileys.js';
import { holderIsGone, type LeaseOwner } from '../session/lease.js';
import { newMessageId } from '../session/message-id.js';
import type { SessionStore } from '../store/types.js';
import { MessageDesk } from './message-desk.js';
import { Metrics } from './metrics.js';
import { startRetention, type Retention } from './retention.js';
import { Supervisor } from './supervisor.js';
import { WebhookDispatcher } from './webhooks.js';

export interface SessionManagerOptions {
  store: SessionStore;
  baileys: Baileys;
  wsUrl: string | undefined;
  timing: Timing;
  /** Messages and events older than this are pruned (WA_KEEP_DAYS). */
  keepDays: number;
  /** wa's own log lines. */
  logger: Logger;
  /** Handed to Baileys (usually quieter than ours). */
  baileysLogger: Logger;
  owner: LeaseOwner;
  /** Serve only these sessions (empty: every paired session this process can own). */
  only?: readonly string[] | undefined;
  /** Sessions not to take even when eligible (being paired in this process). */
  skip?: ((id: string) => boolean) | undefined;
  metrics?: Metrics | undefined;
  clock?: Clock | undefined;
  /** Post each owned session's events there (README "Webhooks"); none when undefined. */
  webhook?: WebhookConfig | undefined;
}

export class SessionManager {
  readonly store: SessionStore;
  readonly supervisor: Supervisor;
  /** Makes every socket of this process (the supervisor's and pairings'), each capturing and sending. */
  readonly openSocket: BaileysSocketFactory;
  readonly desk: MessageDesk;
  readonly metrics: Metrics;
  /** Delivers the webhooks of the sessions this process owns, while it owns them (each runner starts its worker). */
  readonly webhooks: WebhookDispatcher | undefined;
  private readonly options: SessionManagerOptions;
  private retention: Retention | undefined;

  constructor(options: SessionManagerOptions) {
    this.options = options;
    this.store = options.store;
    const metrics = (this.metrics = options.metrics ?? new Metrics());
    const { baileys, logger } = options;
    // This process owns its sessions, so its sockets drain their outboxes (src/session/outbox.ts).
    this.openSocket = baileysSocketFactory(
      baileys,
      { wsUrl: options.wsUrl, timing: options.timing, sendOutbox: true },
      {
        onStored: (count) => metrics.messagesReceived(count),
        onUndecryptable: (count) => metrics.messagesUndecryptable(count),
        logger,
      },
    );
    const clock = options.clock ?? systemClock;
    this.webhooks =
      options.webhook &&
      new WebhookDispatcher({
        store: options.store,
        config: options.webhook,
        timing: options.timing,
        logger,
        clock,
        metrics,
      });
    this.supervisor = new Supervisor({
      store: options.store,
      openSocket: this.openSocket,
      logger,
      baileysLogger: options.baileysLogger,
      timing: options.timing,
      metrics,
      clock,
      webhooks: this.webhooks,
      holderIsGone: (lease) => holderIsGone(lease),
      owner: options.owner,
      only: options.only ?? [],
      skip: options.skip,
    });
    this.desk = new MessageDesk({
      store: options.store,
      socket: (id) => this.supervisor.socket(id),
      newMessageId: (me) => newMessageId(me),
      tools: baileys,
    });
  }

  /** Prunes old messages now and hourly, and takes the first sessions (connecting them, paced). */
  async start(): Promise<void> {
    this.retention = startRetention(this.store, this.options.keepDays, this.options.logger);
    await this.supervisor.start();
  }

  /**
   * Closes every socket without logging out, releasing each lease as its session closes, waits for the
   * message writes of sockets already closed, and stops pruning. `alongside` (serve's pairings) is stopped
   * together with the supervisor, before the writes are awaited, since their sockets come from the same factory.
   */
  async stop(alongside: Array<Promise<void>> = [], settleMs = 6_000): Promise<void> {
    await Promise.all([...alongside, this.supervisor.stop()]);
    await this.webhooks?.close();
    await this.openSocket.settle(settleMs);
    await this.retention?.stop();
  }
}
