/**
 * PostgreSQL LISTEN/NOTIFY for change hints (src/store/changes.ts): every write that queues a message or
 * appends an event also runs `pg_notify` in its transaction, which PostgreSQL delivers at commit to every
 * listening connection, on any host. So a daemon picks up a message `wa send` queued on another host at
 * once instead of at its next outbox poll.
 *
 * The listening connection is a client of its own (not taken from the pool, so it never shrinks the pool
 * the leases are renewed through), opened on the first listener. When it drops it is reopened after a
 * pause; meanwhile the readers' polls carry on alone.
 */
import pg from 'pg';
import { ChangeListeners, type ChangeListener } from './changes.js';

export const OUTBOX_CHANNEL = 'wa_outbox';
export const EVENTS_CHANNEL = 'wa_events';
const RECONNECT_MS = 1000;

export class PgNotifications {
  private readonly listeners = new ChangeListeners();
  private readonly options: pg.ClientConfig;
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: pg.ClientConfig) {
    this.options = options;
  }

  watch(listener: ChangeListener): () => void {
    const remove = this.listeners.add(listener);
    if (!this.client && !this.connecting && !this.retry && !this.closed) this.connect();
    return remove;
  }

  private connect(): void {
    const client = new pg.Client(this.options);
    const lost = (): void => {
      if (this.client === client) this.client = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (this.closed || this.retry) return;
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.closed) this.connect();
      }, RECONNECT_MS);
      this.retry.unref();
    };
    // An unheard 'error' event would kill the process (node-postgres emits one when the server goes away).
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.payload === undefined) return;
      const kind = message.channel === OUTBOX_CHANNEL ? 'outbox' : 'events';
      this.listeners.emit({ kind, session: message.payload });
    });
    this.connecting = (async () => {
      try {
        await client.connect();
        await client.query(`LISTEN ${OUTBOX_CHANNEL}; LISTEN ${EVENTS_CHANNEL}`);
        if (this.closed) return void (await client.end().catch(() => undefined));
        this.client = client;
        // The listener does not keep the process alive: a CLI command or a bot exits when its work is done.
        (client as unknown as { connection?: { stream?: { unref?(): void } } }).connection?.stream?.unref?.();
      } catch {
        lost();
      } finally {
        this.connecting = undefined;
      }
    })();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.connecting;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}

/** The SQL a writing transaction runs to hint at its change: `SELECT pg_notify($1, $2)` with channel and session. */
export const NOTIFY_SQL = `SELECT pg_notify($1, $2)`;
