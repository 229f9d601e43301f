/**
 * What a Baileys disconnect means and what to do about it: the disconnect policy (README "The daemon") as one
 * table, shared by `wa connect`, `wa serve` and what `wa status` shows. Pure: it reads the Boom-shaped
 * error by duck typing, so it never loads Baileys or @hapi/boom.
 */

export type DisconnectAction =
  /** our own graceful end(undefined) */
  | 'closed'
  /** 515: reconnect at once with the saved credentials */
  | 'restart'
  /** 401/403: WhatsApp ended the link; stop, keep the credentials for inspection */
  | 'logged_out'
  /** 440: another client uses this device; stop instead of fighting */
  | 'replaced'
  /** pairing QR codes ran out (408 "QR refs attempts ended"); not a reconnect */
  | 'qr_expired'
  /** a reason that reconnecting cannot fix (version rejected, identity not verified, …) */
  | 'stop'
  /** anything else: reconnect with backoff */
  | 'retry';

export interface Disconnect {
  code: number | null;
  reason: string;
  action: DisconnectAction;
  /** What exactly failed, when a check of wa's own stopped the connection (an identity check, say). */
  detail?: string | undefined;
}

interface BoomLike {
  message?: unknown;
  output?: { statusCode?: unknown };
}

/** Messages Baileys uses for failed identity checks (lib/Utils/noise-handler.js, validate-connection.js). */
const IDENTITY_FAILURES = [
  'noise certificate signature invalid',
  'noise intermediate certificate signature invalid',
  'certification match failed',
  'invalid noise leaf certificate',
  'invalid noise intermediate certificate',
];

export function classifyDisconnect(error: unknown): Disconnect {
  if (error === undefined || error === null) return { code: null, reason: 'closed by wa', action: 'closed' };
  const boom = error as BoomLike;
  const message = typeof boom.message === 'string' ? boom.message : JSON.stringify(error);
  const status = boom.output?.statusCode;
  const code = typeof status === 'number' ? status : null;

  if (IDENTITY_FAILURES.includes(message)) {
    return { code, reason: `server identity not verified (${message})`, action: 'stop' };
  }
  if (message === 'Failed to verify account signature') {
    return {
      code,
      reason: 'phone identity not verified (the account signature at pairing is invalid)',
      action: 'stop',
    };
  }
  switch (code) {
    case 515:
      return { code, reason: 'restart required', action: 'restart' };
    case 401:
      return { code, reason: 'logged out by WhatsApp (device removed on the phone)', action: 'logged_out' };
    case 403:
      return { code, reason: 'forbidden by WhatsApp (account banned or restricted)', action: 'logged_out' };
    case 440:
      return { code, reason: 'replaced by another client using this device', action: 'replaced' };
    case 405:
      return { code, reason: 'client version rejected by WhatsApp (update wa)', action: 'stop' };
    case 411:
      return { code, reason: 'multi-device mismatch', action: 'stop' };
    case 408:
      if (message === 'QR refs attempts ended') return { code, reason: 'QR code expired', action: 'qr_expired' };
      return {
        code,
        reason:
          message === 'Connection was lost' ? 'connection lost (no data from the server)' : `timed out (${message})`,
        action: 'retry',
      };
    case 428:
      return { code, reason: 'connection closed', action: 'retry' };
    case 503:
      return { code, reason: 'service unavailable', action: 'retry' };
    case 500:
      return { code, reason: `bad session or server error (${message})`, action: 'retry' };
    default:
      return { code, reason: message, action: 'retry' };
  }
}
