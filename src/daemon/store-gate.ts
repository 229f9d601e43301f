/**
 * A view of a store that runs at most `limit` of its calls at once, the rest queued in order. The HTTP
 * message and event routes go through one (README "The daemon", HTTP limits): the same store, and on
 * PostgreSQL the same pool of 10 connections, renews the leases, so however many requests come they hold
 * at most `limit` connections and a renewal never queues behind them. A queued call holds nothing.
 */
export class Gate {
  private running = 0;
  private readonly queue: Array<() => void> = [];
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Calls in flight and queued (tests, metrics). */
  get load(): { running: number; queued: number } {
    return { running: this.running, queued: this.queue.length };
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** Store methods that answer at once without the database (SessionStore): never queued, and never made async. */
const UNGATED: ReadonlySet<PropertyKey> = new Set(['watchChanges', 'permissionWarning', 'raw']);

/**
 * `store` with every database call passed through `gate`; properties (backend, location) and the methods
 * that do not touch the database (UNGATED) are as they are.
 */
export function gated<T extends object>(store: T, gate: Gate): T {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      if (UNGATED.has(property)) return (value as (...a: unknown[]) => unknown).bind(target);
      return (...args: unknown[]): Promise<unknown> =>
        gate.run(() => Promise.resolve((value as (...a: unknown[]) => unknown).apply(target, args)));
    },
  });
}
