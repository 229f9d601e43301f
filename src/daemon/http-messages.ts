/**
 * The daemon's message and event routes (README "HTTP API"): `POST /sessions/{id}/messages`,
 * `GET /sessions/{id}/messages/{msgId}` and `GET /events`. src/daemon/http.ts authenticates first and
 * routes here; the sending itself is the MessageDesk's (src/daemon/message-desk.ts): any daemon on the
 * database accepts a message into the outbox, and the session's owner sends it.
 *
 * What many clients cost: every store call of these routes goes through one Gate (at most
 * HTTP_STORE_CONCURRENCY at once, src/daemon/store-gate.ts), so on PostgreSQL they hold at most that many
 * of the pool's connections and lease renewals never queue behind a flood; and every wait — a long-poll,
 * a send's `?wait=` — waits on one shared EventWatch (src/session/event-feed.ts): one `lastCursor()` a
 * tick for all of them, no connection held in between.
 */
import { isWaError } from '../errors.js';
import { parseRecipient } from '../recipient.js';
import { eventJson, EventWatch, pollEvents, WATCH_POLL_MS } from '../session/event-feed.js';
import { WAIT_STATES, type WaitState } from '../session/message-wait.js';
import type { OutgoingMessage, SessionStore } from '../store/types.js';
import { invalid, isReply, json, jsonObject, problem, sessionIdFrom, type Reply, type Route } from './http-reply.js';
import { messageJson, type SendRequest, type SendResult } from './message-desk.js';
import { Gate, gated } from './store-gate.js';

/** Store calls of these routes in flight at once, whatever the number of requests (of PostgreSQL's pool of 10). */
export const HTTP_STORE_CONCURRENCY = 2;
/** `GET /events?wait=` at most, in seconds. */
export const MAX_EVENTS_WAIT_S = 60;
/** `GET /events?limit=`: default and maximum. */
export const DEFAULT_EVENTS_LIMIT = 100;
export const MAX_EVENTS_LIMIT = 1000;
/** `POST …/messages?timeout=` for a `wait`: default (as `wa send --timeout`) and maximum, in seconds. */
export const DEFAULT_SEND_TIMEOUT_S = 60;
export const MAX_SEND_TIMEOUT_S = 120;
/** The fields a send's body takes; any other is refused, so a misspelt one never goes unnoticed. */
const SEND_FIELDS = ['to', 'text', 'key'];
/** The largest cursor a store hands out: SQLite and PostgreSQL cursors are signed 64-bit integers. */
const MAX_CURSOR = 2n ** 63n - 1n;
/** Outbox message ids (Baileys' generateMessageIDV2: `3EB0` and hex) and other clients' ids alike. */
const MESSAGE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** What the routes read directly; the desk gets the whole (gated) store. */
export type EventStore = Pick<SessionStore, 'lastCursor' | 'readEvents' | 'getSession'>;

/** The desk as these routes use it (MessageDesk). */
export interface Desk {
  send(request: SendRequest): Promise<SendResult>;
  get(session: string, id: string): Promise<OutgoingMessage>;
}

export interface MessageRoutesDeps<S extends EventStore> {
  store: S;
  /** The desk, made to read and write through `through.store` and to wait with `through.watch` (MessageDesk.with). */
  desk: (through: { store: S; watch: EventWatch }) => Desk;
  /** The session ids known now, from a shared read (serve's, for /sessions); a miss is looked up by id. */
  sessionIds?: (() => Promise<readonly string[]>) | undefined;
  /** The shared watch's tick (default WATCH_POLL_MS). */
  pollMs?: number | undefined;
  concurrency?: number | undefined;
}

export interface MessageRoutes {
  routes: Route[];
  watch: EventWatch;
  gate: Gate;
  /**
   * The daemon is stopping: every long-poll answers now (no events), every send's wait answers 503
   * E_STOPPING with the message as it stands (a queued one stays queued: the next owner sends it).
   */
  close(): void;
}

export function messageRoutes<S extends EventStore>(deps: MessageRoutesDeps<S>): MessageRoutes {
  const gate = new Gate(deps.concurrency ?? HTTP_STORE_CONCURRENCY);
  const store = gated(deps.store, gate);
  const watch = new EventWatch(store, { pollMs: deps.pollMs ?? WATCH_POLL_MS });
  const desk = deps.desk({ store, watch });
  const closing = new AbortController();

  const sessionKnown = async (id: string): Promise<boolean> =>
    (await deps.sessionIds?.())?.includes(id) || (await store.getSession(id)) !== undefined;

  const routes: Route[] = [
    {
      pattern: /^\/sessions\/([^/]+)\/messages$/,
      methods: {
        POST: async ({ id, url, req, body, signal }) => {
          const query = queryOf(url, ['wait', 'timeout']);
          if (isReply(query)) return query;
          const wait = query.wait ?? 'queued';
          if (!(WAIT_STATES as readonly string[]).includes(wait)) {
            return invalid('wait', `must be ${WAIT_STATES.join(', ')} (or absent: queued)`);
          }
          const timeout = seconds(query.timeout, 'timeout', MAX_SEND_TIMEOUT_S, DEFAULT_SEND_TIMEOUT_S, false);
          if (isReply(timeout)) return timeout;
          const parsed = jsonObject(req, body);
          if (isReply(parsed)) return parsed;
          const unknown = Object.keys(parsed).find((field) => !SEND_FIELDS.includes(field));
          if (unknown !== undefined)
            return invalid(unknown, `unknown field (the body takes ${SEND_FIELDS.join(', ')})`);
          const { to, text, key } = parsed;
          if (typeof to !== 'string') {
            return invalid('to', 'must be a string: +15551234567, 15551234567@s.whatsapp.net or <digits>@lid');
          }
          if (typeof text !== 'string') return invalid('text', 'must be a string');
          if (key !== undefined && key !== null && typeof key !== 'string') return invalid('key', 'must be a string');
          try {
            parseRecipient(to);
          } catch (error) {
            if (isWaError(error)) return problem(422, error.code, `to: ${error.message}`);
            throw error;
          }
          const { message, created } = await desk.send({
            session: id,
            to,
            text,
            key,
            wait: wait as WaitState,
            timeoutMs: timeout * 1000,
            signal,
            detach: closing.signal,
          });
          // 202: accepted, on its way; 200: a state it waited for reached, or the message a key already named.
          const status = wait === 'queued' && created ? 202 : 200;
          return json(status, messageJson(message), {
            location: `/sessions/${encodeURIComponent(id)}/messages/${encodeURIComponent(message.id)}`,
          });
        },
      },
    },
    {
      pattern: /^\/sessions\/([^/]+)\/messages\/([^/]+)$/,
      methods: {
        GET: async ({ id, params, url }) => {
          const query = queryOf(url, []);
          if (isReply(query)) return query;
          const messageId = params[0] ?? '';
          if (!MESSAGE_ID.test(messageId)) return invalid('msgId', 'is not a message id');
          return json(200, messageJson(await desk.get(id, messageId)));
        },
      },
    },
    {
      pattern: /^\/events$/,
      methods: {
        GET: async ({ url, signal, park }) => {
          const query = queryOf(url, ['since', 'limit', 'wait'], ['session']);
          if (isReply(query)) return query;
          const since = query.since;
          if (since !== undefined && (!/^\d{1,19}$/.test(since) || BigInt(since) > MAX_CURSOR)) {
            return invalid('since', 'must be a cursor: the decimal `cursor` of an event or of the last answer');
          }
          const limit = integer(query.limit, 'limit', 1, MAX_EVENTS_LIMIT, DEFAULT_EVENTS_LIMIT);
          if (isReply(limit)) return limit;
          const waitS = seconds(query.wait, 'wait', MAX_EVENTS_WAIT_S, 0, true);
          if (isReply(waitS)) return waitS;
          const sessions: string[] = [];
          // `session=a&session=b` and `session=a,b` alike.
          for (const value of url.searchParams.getAll('session').flatMap((v) => v.split(','))) {
            const checked = sessionIdFrom(value.trim(), 'session');
            if (isReply(checked)) return checked;
            if (!sessions.includes(checked)) sessions.push(checked);
          }
          for (const session of sessions) {
            if (!(await sessionKnown(session))) {
              return problem(404, 'E_SESSION_UNKNOWN', `session: no session '${session}'`);
            }
          }
          // A client waiting with nothing to say may be asked to answer early, to make room at the cap.
          const stops = [signal, closing.signal, ...(waitS > 0 ? [park()] : [])];
          const events = await pollEvents(store, {
            since,
            sessions,
            limit,
            waitMs: waitS * 1000,
            signal: AbortSignal.any(stops),
            watch,
          });
          // The next request passes this as `since`: the last event's cursor, or `since` itself.
          const cursor = events.at(-1)?.cursor ?? since ?? '0';
          return json(200, { events: events.map(eventJson), cursor });
        },
      },
    },
  ];

  return {
    routes,
    watch,
    gate,
    close: () => {
      closing.abort();
      watch.close();
    },
  };
}

/**
 * The query's parameters, each given at most once (`repeatable` ones aside), or a 400 naming the first
 * one these routes do not take: a misspelt `?since` (say `?cursor=`) would otherwise read from the start.
 */
function queryOf(url: URL, allowed: string[], repeatable: string[] = []): Record<string, string | undefined> | Reply {
  const values: Record<string, string | undefined> = {};
  for (const [name, value] of url.searchParams) {
    if (repeatable.includes(name)) continue;
    if (!allowed.includes(name)) {
      const known = [...allowed, ...repeatable];
      return invalid(
        name,
        `unknown parameter (${known.length > 0 ? `this route takes ${known.join(', ')}` : 'this route takes none'})`,
      );
    }
    if (values[name] !== undefined) return invalid(name, 'given more than once');
    values[name] = value;
  }
  return values;
}

/** A plain decimal number of seconds (`1.5` too) up to `max`, above 0 unless `zero` is allowed, or the 400 naming the field. */
function seconds(
  value: string | undefined,
  field: string,
  max: number,
  fallback: number,
  zero: boolean,
): number | Reply {
  if (value === undefined) return fallback;
  const n = /^\d{1,6}(\.\d{1,3})?$/.test(value) ? Number(value) : NaN;
  if (!(n <= max && (zero ? n >= 0 : n > 0))) {
    return invalid(field, `must be a number of seconds, ${zero ? 'from 0' : 'more than 0'} up to ${max}`);
  }
  return n;
}

/** A plain decimal integer in [min, max], or the 400 naming the field. */
function integer(value: string | undefined, field: string, min: number, max: number, fallback: number): number | Reply {
  if (value === undefined) return fallback;
  const n = /^\d{1,7}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) return invalid(field, `must be an integer from ${min} to ${max}`);
  return n;
}
