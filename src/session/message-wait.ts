/**
 * Waiting for an outgoing message (README "Sending messages"): `wa send`, the HTTP API and the library
 * all queue a message in the outbox and then watch its row until it reaches the state the caller asked
 * for, becomes final, or the caller gives up. The row is the truth wherever the owner runs (this process
 * or a daemon on another host of the same database), so it is polled rather than signalled.
 */
import { sleep } from '../clock.js';
import type { OutgoingMessage, OutgoingStatus, SessionStore } from '../store/types.js';

/** What a caller can wait for: accepted (`queued`), WhatsApp's ack (`sent`), or the recipient's device (`delivered`). */
export type WaitState = 'queued' | 'sent' | 'delivered';
export const WAIT_STATES: readonly WaitState[] = ['queued', 'sent', 'delivered'];

/** How often a waiter reads its message's row (one indexed read by primary key). */
export const MESSAGE_POLL_MS = 100;

const RANK: Record<OutgoingStatus, number> = {
  queued: 0,
  sending: 1,
  unknown: 1,
  sent: 2,
  delivered: 3,
  read: 4,
  rejected: -1,
  cancelled: -1,
};

/** States a message never leaves. */
export const FINAL_STATUSES: ReadonlySet<OutgoingStatus> = new Set(['rejected', 'cancelled']);

export const reached = (message: OutgoingMessage, wait: WaitState): boolean => RANK[message.status] >= RANK[wait];

/**
 * Reads the message's row until it reached `wait`, became final, or `signal` fired; returns it as last
 * read. Between reads it waits for `wake`: by default MESSAGE_POLL_MS; the daemon's HTTP waits pass the
 * next status event of the message from a shared EventWatch (src/session/event-feed.ts), since every
 * status change appends one in the same transaction.
 */
export async function waitForMessage(
  store: SessionStore,
  message: OutgoingMessage,
  wait: WaitState,
  signal: AbortSignal,
  wake: (signal: AbortSignal) => Promise<unknown> = (s) => sleep(MESSAGE_POLL_MS, s),
): Promise<OutgoingMessage> {
  let current = message;
  while (!reached(current, wait) && !FINAL_STATUSES.has(current.status) && !signal.aborted) {
    await wake(signal);
    current = (await store.getOutgoing(current.session, current.id)) ?? current;
  }
  return current;
}
