import { describe, expect, it } from 'vitest';
import { parseRecipient } from '../../src/recipient.js';

describe('parseRecipient (README "Sending messages")', () => {
  it('normalizes numbers and jids', () => {
    for (const form of ['+15551234567', '15551234567', '15551234567@s.whatsapp.net', '+1 (555) 123-4567']) {
      expect(parseRecipient(form)).toEqual({ jid: '15551234567@s.whatsapp.net', kind: 'pn' });
    }
    expect(parseRecipient('100000000000004@lid')).toEqual({ jid: '100000000000004@lid', kind: 'lid' });
  });

  it('refuses groups with "not supported yet", and anything else as a bad recipient (exit 2)', () => {
    expect(() => parseRecipient('1203630@g.us')).toThrow(/not supported yet/);
    for (const bad of ['', '12', '0155512345', 'abc', '15551234567:3@s.whatsapp.net', 'x@lid', '1555@c.us']) {
      expect(() => parseRecipient(bad), bad).toThrow(expect.objectContaining({ exitCode: 2 }));
    }
  });
});
