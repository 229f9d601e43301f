/**
 * What the daemon's HTTP routes answer with (src/daemon/http.ts, src/daemon/http-messages.ts): replies,
 * the JSON error shape `{"error","code"}`, request-body parsing, and the status of each error class
 * (README "The daemon", HTTP).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ExitCode, isWaError } from '../errors.js';
import { assertSessionId } from '../session-id.js';
import { messageJson, SendError } from './message-desk.js';

export interface Reply {
  status: number;
  body: string;
  type?: string;
  headers?: Record<string, string>;
  /** A streamed answer (the pairing events): called with the response once the headers are written. */
  stream?: (res: ServerResponse) => void;
}

/** What a route handler gets. */
export interface RouteRequest {
  /** The path's session id (validated), '' for routes without one. */
  id: string;
  /** The path's further segments (`{msgId}`), percent-decoded, not validated. */
  params: string[];
  url: URL;
  body: Buffer | undefined;
  req: IncomingMessage;
  /** Aborted when the client goes away before its answer is written. */
  signal: AbortSignal;
  /**
   * Marks this request as one that may be cut short to make room at the connection cap (a long-poll
   * waiting with nothing to say), and returns the signal that asks it to answer now: it then answers as
   * if its wait ran out, and its connection is closed after the answer.
   */
  park: () => AbortSignal;
}

export type Handler = (request: RouteRequest) => Promise<Reply>;

/** Method → handler for the paths `pattern` matches; its first group is a session id, later ones params. */
export interface Route {
  pattern: RegExp;
  methods: Record<string, Handler>;
}

export const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body: `${JSON.stringify(body)}\n`,
  ...(headers ? { headers } : {}),
});

export const problem = (status: number, code: string, error: string, headers?: Record<string, string>): Reply =>
  json(status, { error, code }, headers);

/** A 400 naming what is wrong: `to: must be a string`. */
export const invalid = (field: string, message: string): Reply => problem(400, 'E_INVALID', `${field}: ${message}`, {});

export const isReply = (value: unknown): value is Reply =>
  typeof value === 'object' && value !== null && 'status' in value && 'body' in value;

/** A JSON body's object, or the 400/415 answer saying what is wrong with it. */
export function jsonObject(req: IncomingMessage, body: Buffer | undefined): Record<string, unknown> | Reply {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return problem(415, 'E_CONTENT_TYPE', 'send the body as JSON (Content-Type: application/json)');
  }
  let value: unknown;
  try {
    value = JSON.parse(body?.toString('utf8') ?? '');
  } catch {
    return problem(400, 'E_JSON', 'the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return problem(400, 'E_JSON', 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** A session id from the body or the path, or the 400 naming the field. */
export function sessionIdFrom(value: unknown, field: string): string | Reply {
  if (typeof value !== 'string') return invalid(field, 'must be a string');
  try {
    return assertSessionId(value);
  } catch (error) {
    return invalid(field, error instanceof Error ? error.message : String(error));
  }
}

/**
 * Codes whose status is not their exit-code class's: the client's input is well-formed but names nothing
 * (404), collides (409) or cannot be sent to (422); a wait that ended without an outcome is a timeout (504).
 */
const STATUS_BY_CODE: Record<string, number> = {
  E_SESSION_UNKNOWN: 404,
  E_NOT_PAIRING: 404,
  E_MESSAGE_UNKNOWN: 404,
  E_SESSION_EXISTS: 409,
  E_SESSION_PAIRED: 409,
  E_RECIPIENT: 422,
  E_RECIPIENT_UNSUPPORTED: 422,
  E_NOT_ON_WHATSAPP: 422,
  E_TIMEOUT: 504,
  E_UNKNOWN: 504,
  E_CANCELLED: 504,
};

/** The status of each exit-code class: usage 400, not paired and busy 409, rejected 502, unavailable and storage 503. */
const STATUS_BY_EXIT: Partial<Record<ExitCode, number>> = {
  [ExitCode.usage]: 400,
  [ExitCode.notPaired]: 409,
  [ExitCode.busy]: 409,
  [ExitCode.rejected]: 502,
  [ExitCode.unavailable]: 503,
  [ExitCode.storage]: 503,
};

/** The HTTP status a WaError answers with (README "The daemon", HTTP; the table under "HTTP API"). */
export const statusOf = (code: string, exitCode: ExitCode): number =>
  STATUS_BY_CODE[code] ?? STATUS_BY_EXIT[exitCode] ?? 500;

/**
 * The answer to a route that threw: a WaError by its class (a send that fell short also carries the
 * message as it stands, under `message`), anything else a bare 500 with the details given to `onError`.
 */
export function failure(error: unknown, onError: ((error: unknown) => void) | undefined): Reply {
  if (isWaError(error)) {
    const status = statusOf(error.code, error.exitCode);
    if (status === 500) onError?.(error);
    const body: Record<string, unknown> = { error: error.message, code: error.code };
    if (error instanceof SendError) body.message = messageJson(error.outgoing);
    return json(status, body);
  }
  onError?.(error);
  // An unexpected error's message may carry anything (a path, a query): it stays in the log.
  return problem(500, 'E_INTERNAL', 'internal error');
}
