/** KnownNumbers (src/session/outbox.ts): numbers found on WhatsApp are remembered for a while, and only those. */
import { describe, expect, it } from 'vitest';
import { KNOWN_NUMBER_TTL_MS, KnownNumbers } from '../../src/session/outbox.js';

describe('KnownNumbers', () => {
  it('remembers a number for the TTL, then asks again', () => {
    let now = 1_000_000;
    const known = new KnownNumbers(() => now);
    const jid = '15551230001@s.whatsapp.net';
    expect(known.has(jid)).toBe(false);
    known.add(jid);
    now += KNOWN_NUMBER_TTL_MS - 1;
    expect(known.has(jid)).toBe(true);
    now += 1;
    expect(known.has(jid)).toBe(false);
  });

  it('forgets the oldest number first past a thousand, and a number added again is young again', () => {
    let now = 0;
    const known = new KnownNumbers(() => now);
    const jid = (i: number) => `1555${String(1000000 + i)}@s.whatsapp.net`;
    for (let i = 0; i < 1000; i++) known.add(jid(i));
    known.add(jid(0)); // refreshed: now the youngest
    now = 1;
    known.add(jid(1000)); // one too many: the oldest (jid(1)) goes
    expect(known.has(jid(0))).toBe(true);
    expect(known.has(jid(1))).toBe(false);
    expect(known.has(jid(2))).toBe(true);
    expect(known.has(jid(1000))).toBe(true);
  });
});
