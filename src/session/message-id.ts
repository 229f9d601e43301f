/**
 * WhatsApp message ids as Baileys makes them (node_modules/@whiskeysockets/baileys/lib/Utils/generics.js
 * generateMessageIDV2): `3EB0` and 18 upper-case hex digits of a SHA-256 over the time, the sender's user
 * and 16 random bytes. The same algorithm here, on node:crypto alone, so `wa send` handing a message to a
 * live owner never loads Baileys (that import and its self-test are most of a delegated send's time).
 */
import { createHash, randomBytes } from 'node:crypto';

export function newMessageId(meJid?: string | null, now = Date.now()): string {
  const data = Buffer.alloc(8 + 20 + 16);
  data.writeBigUInt64BE(BigInt(Math.floor(now / 1000)));
  // jidDecode's user: what precedes '@', without a device (':3') or agent ('_1') suffix.
  const user = meJid ? /^([^@:_]+)/.exec(meJid.split('@')[0] ?? '')?.[1] : undefined;
  if (user && meJid?.includes('@')) {
    data.write(user, 8);
    data.write('@c.us', 8 + user.length);
  }
  randomBytes(16).copy(data, 28);
  return '3EB0' + createHash('sha256').update(data).digest('hex').toUpperCase().substring(0, 18);
}
