/**
 * Argument and option parsers for commander: every value from argv is validated here, once, at the edge,
 * and commands receive it typed (an id that passed the pattern, milliseconds, digits, an address).
 * Each throws the usage error (exit 2) the user sees.
 */
import type { HttpAddress } from '../daemon/http.js';
import { usageError } from '../errors.js';
import { parsePhone } from '../phone.js';
import { CURSOR_PATTERN } from '../session/event-feed.js';
import { assertSessionId } from '../session-id.js';

export const sessionIdArg = (value: string): string => assertSessionId(value);

/** For variadic `[ids...]`: commander folds the values through the parser. */
export const sessionIdsArg = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  assertSessionId(value),
];

/** `--timeout <seconds>` → milliseconds: a plain decimal number of seconds, 0 < s ≤ 86400 (no `0x10`, no `1e3`). */
export const secondsArg =
  (flag: string) =>
  (value: string): number => {
    const seconds = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : NaN;
    if (!(seconds > 0 && seconds <= 86_400)) {
      throw usageError(
        'E_USAGE',
        `${flag} must be a number of seconds between 0 and 86400, not ${JSON.stringify(value)}`,
      );
    }
    return Math.round(seconds * 1000);
  };

/** `--phone` → digits with the country code (src/phone.ts: the same rule as the HTTP API's `phone`). */
export const phoneArg = (value: string): string => parsePhone(value, '--phone');

/** `--http [host:]port`; a bare port binds to loopback (expose it with 0.0.0.0:port). */
export function httpAddressArg(value: string): HttpAddress {
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[^:]+):)?(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw usageError(
      'E_HTTP',
      `invalid --http address ${JSON.stringify(value)}: use [host:]port, like 8080 or 0.0.0.0:8080`,
    );
  }
  return { host: match[1]?.replace(/^\[|\]$/g, '') ?? '127.0.0.1', port };
}

/** `--since <cursor>`: an event cursor as `wa listen --json` prints it (a decimal string). */
export const cursorArg = (value: string): string => {
  if (!CURSOR_PATTERN.test(value)) {
    throw usageError(
      'E_USAGE',
      `--since must be an event cursor (a decimal number, like 42), not ${JSON.stringify(value)}`,
    );
  }
  return value;
};

/** A positive whole number (`--limit <n>`): 1 to 1000000000, digits only. */
export const positiveIntArg =
  (flag: string) =>
  (value: string): number => {
    const n = /^\d{1,10}$/.test(value.trim()) ? Number(value) : NaN;
    if (!(Number.isSafeInteger(n) && n >= 1 && n <= 1_000_000_000)) {
      throw usageError('E_USAGE', `${flag} must be a positive whole number, not ${JSON.stringify(value)}`);
    }
    return n;
  };
