/**
 * The kinds of event in the append-only log (README "Receiving messages", "Sending messages"): one list for
 * the store, which writes them, and for the config, which filters webhooks by them (WA_WEBHOOK_EVENTS).
 */
export const EVENT_TYPES = ['message', 'status', 'undecryptable', 'connection', 'state'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
