/**
 * Change hints (SessionStore.watchChanges): a message queued or an event appended. Readers of the outbox
 * and the event log poll the database — the truth, whichever process wrote — and a hint only wakes them
 * early, so a missed one costs latency, never data.
 */

export interface StoreChange {
  /** `outbox`: a message was queued for the session; `events`: events were appended to the log. */
  kind: 'outbox' | 'events';
  session: string;
}

export type ChangeListener = (change: StoreChange) => void;

export class ChangeListeners {
  private readonly listeners = new Set<ChangeListener>();

  get size(): number {
    return this.listeners.size;
  }

  add(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  emit(change: StoreChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch {
        // A listener's failure is its own; the write it reports has committed.
      }
    }
  }
}
