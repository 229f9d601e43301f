import { usageError } from './errors.js';

/**
 * A phone number for a pairing code → digits with the country code: spaces, dashes, dots, brackets and a
 * leading `+` are dropped; 7–15 digits (E.164) that do not start with 0 (a trunk or `00` international
 * prefix is not a country code). `field` names the input in the error (`--phone` on the command line,
 * `phone` in an HTTP body). The one validator for `wa connect --phone` and `POST /sessions/{id}/pair`.
 */
export function parsePhone(value: string, field: string): string {
  const digits = value.replace(/[\s\-().]/g, '').replace(/^\+/, '');
  if (!/^[1-9]\d{6,14}$/.test(digits)) {
    throw usageError(
      'E_PHONE',
      `${field} must be a phone number with country code, digits only (like 4915112345678), not ${JSON.stringify(value)}`,
    );
  }
  return digits;
}
