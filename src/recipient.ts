/**
 * Recipients of `wa send` (README "Sending messages", recipients), checked without a socket: a phone number
 * (`+15551234567`, `15551234567`, `15551234567@s.whatsapp.net`) or a LID (`<digits>@lid`). Groups and
 * anything else are usage errors (exit 2) before anything is queued, whoever owns the session. Whether a
 * number is on WhatsApp needs a socket: src/session/outbox.ts asks (onWhatsApp).
 */
import { usageError } from './errors.js';

export interface Recipient {
  /** The normalized jid: `<digits>@s.whatsapp.net` or `<digits>@lid`. */
  jid: string;
  kind: 'pn' | 'lid';
}

export function parseRecipient(input: string): Recipient {
  const value = input.trim();
  if (/@g\.us$/i.test(value) || /@broadcast$/i.test(value) || /@newsletter$/i.test(value)) {
    throw usageError('E_RECIPIENT_UNSUPPORTED', `sending to groups is not supported yet (${JSON.stringify(input)})`);
  }
  const lid = /^(\d{1,20})@lid$/.exec(value);
  if (lid) return { jid: `${lid[1]}@lid`, kind: 'lid' };
  const pn = /^(\d+)@s\.whatsapp\.net$/.exec(value);
  // A bare number may be written with spaces, dashes, dots or brackets (+1 (555) 123-4567).
  const number = /^\+?([1-9]\d{6,14})$/.exec(pn ? pn[1]! : value.replace(/[\s\-().]/g, ''));
  if (number) return { jid: `${number[1]}@s.whatsapp.net`, kind: 'pn' };
  throw usageError(
    'E_RECIPIENT',
    `invalid recipient ${JSON.stringify(input)}: use a phone number with country code (+15551234567), a jid (15551234567@s.whatsapp.net) or a LID (<digits>@lid)`,
  );
}
