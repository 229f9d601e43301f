/** newMessageId (src/session/message-id.ts): Baileys' generateMessageIDV2 format, without loading Baileys. */
import { generateMessageIDV2 } from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { newMessageId } from '../../src/session/message-id.js';

describe('newMessageId', () => {
  it("has the shape of Baileys' own ids (3EB0 and 18 upper-case hex digits), with or without the sender", () => {
    const shape = /^3EB0[0-9A-F]{18}$/;
    expect(generateMessageIDV2('15551230001:3@s.whatsapp.net')).toMatch(shape); // what it stands in for
    for (const me of ['15551230001:3@s.whatsapp.net', '15551230001@s.whatsapp.net', undefined, null, 'nonsense']) {
      expect(newMessageId(me)).toMatch(shape);
    }
  });

  it('never repeats (16 random bytes in every id)', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newMessageId('15551230001@s.whatsapp.net', 0)));
    expect(ids.size).toBe(10_000);
  });
});
