/**
 * The daemon's counters, rendered as Prometheus text. Kept by hand: a handful of series does not need a
 * client library, and wa must not load anything heavy.
 */
import { OUTGOING_STATUSES, type WebhookStats } from '../store/types.js';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import type { SessionView } from '../session/session-view.js';

const WRITE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

const escape = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (pairs: Record<string, string>): string =>
  `{${Object.entries(pairs)
    .map(([k, v]) => `${k}="${escape(v)}"`)
    .join(',')}}`;

const WEBHOOK_RESULTS = ['ok', 'failed', 'dead'] as const;
export type WebhookResult = (typeof WEBHOOK_RESULTS)[number];

export class Metrics {
  private readonly connects = new Map<string, number>();
  private readonly disconnects = new Map<string, number>();
  private readonly writeBuckets = WRITE_BUCKETS.map(() => 0);
  private writeCount = 0;
  private writeSum = 0;
  private writeFailures = 0;
  private received = 0;
  private undecryptable = 0;
  private readonly webhookResults = new Map<WebhookResult, number>();
  private readonly unhandledRejections: () => number;
  /** Event-loop delay of this process (sampled by Node every 20 ms), over the current and previous window. */
  private loop: { current: RecordableHistogram; previous: RecordableHistogram; timer: NodeJS.Timeout } | undefined;

  /** `unhandledRejections` reads the process's count (kept at the CLI edge). */
  constructor(unhandledRejections: () => number = () => 0) {
    this.unhandledRejections = unhandledRejections;
  }

  /**
   * Starts measuring event-loop lag: a blocked loop delays lease renewals, keep-alive answers and every
   * HTTP request, so it is the first thing to look at when sessions flap. A 100 ms timer records how late
   * it fires (as monitorEventLoopDelay does, but into a histogram that can be merged: Node cannot add an
   * ELD histogram to another), reported over the last one to two windows so an old spike ages out.
   */
  monitorEventLoop(windowMs = 60_000, sampleMs = 100): void {
    if (this.loop) return;
    let last = performance.now();
    let windowStart = last;
    const loop = {
      current: createHistogram(),
      previous: createHistogram(),
      timer: undefined as unknown as NodeJS.Timeout,
    };
    loop.timer = setInterval(() => {
      const now = performance.now();
      loop.current.record(Math.max(1, Math.round((now - last - sampleMs) * 1e6)));
      last = now;
      if (now - windowStart >= windowMs) {
        loop.previous = loop.current;
        loop.current = createHistogram();
        windowStart = now;
      }
    }, sampleMs);
    loop.timer.unref();
    this.loop = loop;
  }

  stopEventLoopMonitor(): void {
    if (!this.loop) return;
    clearInterval(this.loop.timer);
    this.loop = undefined;
  }

  /** A connect attempt that ended `open`, or failed before opening. */
  connect(result: 'open' | 'failed'): void {
    this.connects.set(result, (this.connects.get(result) ?? 0) + 1);
  }

  /** A connection that closed, by code and the action the policy took. */
  disconnect(code: number | null, action: string): void {
    const key = `${code ?? 'none'}|${action}`;
    this.disconnects.set(key, (this.disconnects.get(key) ?? 0) + 1);
  }

  /** New messages stored (duplicates WhatsApp delivered again are not counted). */
  messagesReceived(count: number): void {
    this.received += count;
  }

  messagesUndecryptable(count: number): void {
    this.undecryptable += count;
  }

  /** One webhook attempt by this process: delivered (ok), failed (retried later), or the last one of a dead event. */
  webhookDelivery(result: WebhookResult): void {
    this.webhookResults.set(result, (this.webhookResults.get(result) ?? 0) + 1);
  }

  keyStoreWrite(ms: number, ok: boolean): void {
    const seconds = ms / 1000;
    this.writeCount++;
    this.writeSum += seconds;
    WRITE_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.writeBuckets[i]!++;
    });
    if (!ok) this.writeFailures++;
  }

  /**
   * `outbox`: the database's outgoing messages by state (outboxTotals); `webhooks`: per session delivery
   * stats (webhookStats) when webhooks are configured, else undefined. Both read with the sessions.
   */
  render(
    sessions: readonly SessionView[],
    outbox: ReadonlyMap<string, number> = new Map(),
    webhooks?: ReadonlyMap<string, WebhookStats>,
  ): string {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string): void =>
      void lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

    family('wa_sessions', 'gauge', 'Sessions in the database by state.');
    const byState = new Map<string, number>([
      ['unpaired', 0],
      ['paired', 0],
      ['logged_out', 0],
      ['replaced', 0],
    ]);
    for (const s of sessions) byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
    for (const [state, n] of byState) lines.push(`wa_sessions${labels({ state })} ${n}`);

    family('wa_connections', 'gauge', 'Sessions by live connection state (any owner).');
    const byConnection = new Map<string, number>([
      ['open', 0],
      ['connecting', 0],
      ['closed', 0],
    ]);
    for (const s of sessions) byConnection.set(s.connection, (byConnection.get(s.connection) ?? 0) + 1);
    for (const [connection, n] of byConnection) lines.push(`wa_connections${labels({ connection })} ${n}`);

    family('wa_connects_total', 'counter', 'Connect attempts by this process, by result.');
    for (const result of ['open', 'failed'])
      lines.push(`wa_connects_total${labels({ result })} ${this.connects.get(result) ?? 0}`);

    family(
      'wa_disconnects_total',
      'counter',
      'Closed connections by disconnect code and the action taken (restart, retry, stop, ...).',
    );
    for (const [key, n] of this.disconnects) {
      const [code = '', action = ''] = key.split('|');
      lines.push(`wa_disconnects_total${labels({ code, action })} ${n}`);
    }

    family('wa_keystore_write_seconds', 'histogram', 'Latency of credential and key-store commits.');
    WRITE_BUCKETS.forEach((bound, i) =>
      lines.push(`wa_keystore_write_seconds_bucket${labels({ le: String(bound) })} ${this.writeBuckets[i]}`),
    );
    lines.push(`wa_keystore_write_seconds_bucket${labels({ le: '+Inf' })} ${this.writeCount}`);
    lines.push(`wa_keystore_write_seconds_sum ${this.writeSum}`, `wa_keystore_write_seconds_count ${this.writeCount}`);

    family(
      'wa_keystore_write_failures_total',
      'counter',
      'Credential and key-store commits that failed (Baileys retries them).',
    );
    lines.push(`wa_keystore_write_failures_total ${this.writeFailures}`);
    family('wa_messages', 'gauge', 'Messages sent through the outbox (direction out), in the database, by state.');
    for (const state of OUTGOING_STATUSES)
      lines.push(`wa_messages${labels({ direction: 'out', state })} ${outbox.get(state) ?? 0}`);
    family('wa_messages_received_total', 'counter', 'Received messages stored by this process (each once).');
    lines.push(`wa_messages_received_total ${this.received}`);
    family('wa_messages_undecryptable_total', 'counter', 'Received messages that could not be decrypted.');
    lines.push(`wa_messages_undecryptable_total ${this.undecryptable}`);
    family(
      'wa_webhook_deliveries_total',
      'counter',
      'Webhook attempts by this process, by result (dead: the last try of an event given up).',
    );
    for (const result of WEBHOOK_RESULTS)
      lines.push(`wa_webhook_deliveries_total${labels({ result })} ${this.webhookResults.get(result) ?? 0}`);
    if (webhooks) {
      let pending = 0;
      let dead = 0;
      for (const stats of webhooks.values()) {
        pending += stats.pending;
        dead += stats.dead;
      }
      family(
        'wa_webhook_pending_events',
        'gauge',
        'Events not yet delivered to the webhook, all sessions (the database).',
      );
      lines.push(`wa_webhook_pending_events ${pending}`);
      family('wa_webhook_dead_events', 'gauge', 'Events given up on after the max age, all sessions (the database).');
      lines.push(`wa_webhook_dead_events ${dead}`);
    }
    family(
      'wa_unhandled_rejections_total',
      'counter',
      'Promise rejections nothing handled (Baileys leaves some behind when sockets die); logged at debug.',
    );
    lines.push(`wa_unhandled_rejections_total ${this.unhandledRejections()}`);
    family(
      'wa_process_active_resources',
      'gauge',
      'Live handles and requests of this process (sockets, timers, ...): flat across reconnects, or something leaks.',
    );
    lines.push(`wa_process_active_resources ${process.getActiveResourcesInfo().length}`);
    if (this.loop) {
      const merged = createHistogram();
      merged.add(this.loop.previous);
      merged.add(this.loop.current);
      // Recorded in nanoseconds.
      const seconds = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
      family(
        'wa_event_loop_lag_seconds',
        'summary',
        'Event-loop delay of this process over the last one to two minutes (how late a 100 ms timer fires).',
      );
      for (const q of [0.5, 0.9, 0.99])
        lines.push(
          `wa_event_loop_lag_seconds${labels({ quantile: String(q) })} ${merged.count === 0 ? 0 : seconds(merged.percentile(q * 100))}`,
        );
      lines.push(`wa_event_loop_lag_seconds_count ${merged.count}`);
      family('wa_event_loop_lag_max_seconds', 'gauge', 'Longest event-loop delay over the same window.');
      lines.push(`wa_event_loop_lag_max_seconds ${merged.count === 0 ? 0 : seconds(merged.max)}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
