/** Realistic Baileys 7 key values, generated the way Baileys makes them, from a seeded PRNG. */
import { Curve, proto } from '@whiskeysockets/baileys';

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;
export const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
export const bytes = (rand: Rand, n: number): Buffer =>
  Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));

/** Ids as Baileys uses them, including the characters useMultiFileAuthState rewrites ('/' and ':'). */
export const ID_POOLS: Record<string, readonly string[]> = {
  'pre-key': ['1', '2', '3', '811', '812', '813'],
  session: ['15551234567_1.0', '15551234567_1.3', '98765432101234_1.0', '555:1@s.whatsapp.net', '555-1@s.whatsapp.net'],
  'sender-key': [
    '120363041234567890@g.us::15551234567::0',
    '120363041234567890@g.us--15551234567--0',
    'status@broadcast::555::2',
  ],
  'sender-key-memory': ['120363041234567890@g.us', 'status@broadcast'],
  'app-state-sync-key': ['AAAAAB/+', 'AAAAAB__+', 'AAAAAQ==', 'AAAAAg=='],
  'app-state-sync-version': ['critical_block', 'critical_unblock_low', 'regular', 'regular_high', 'regular_low'],
  'lid-mapping': ['15551234567', '98765432101234_reverse', '4915112345678'],
  'device-list': ['15551234567', '98765432101234'],
  tctoken: ['__index', '15551234567@s.whatsapp.net', '98765432101234@lid'],
  'identity-key': ['15551234567.0', '98765432101234_1.0', '15551234567:2'],
};

export function valueFor(type: string, rand: Rand): unknown {
  switch (type) {
    case 'pre-key':
      return Curve.generateKeyPair();
    case 'session':
      // libsignal's SessionRecord.serialize(): a plain object with Buffers inside.
      return {
        _sessions: {
          [bytes(rand, 33).toString('base64')]: {
            registrationId: Math.floor(rand() * 16380),
            currentRatchet: {
              ephemeralKeyPair: { pubKey: bytes(rand, 33), privKey: bytes(rand, 32) },
              lastRemoteEphemeralKey: bytes(rand, 33),
              previousCounter: Math.floor(rand() * 10),
              rootKey: bytes(rand, 32),
            },
            indexInfo: {
              baseKey: bytes(rand, 33),
              baseKeyType: 2,
              closed: -1,
              used: Date.now(),
              created: Date.now(),
              remoteIdentityKey: bytes(rand, 33),
            },
            _chains: {
              [bytes(rand, 33).toString('base64')]: {
                chainKey: { counter: 0, key: bytes(rand, 32) },
                chainType: 1,
                messageKeys: {},
              },
            },
          },
        },
        version: 'v1',
      };
    case 'sender-key':
      return Buffer.from(
        JSON.stringify([
          {
            senderKeyId: Math.floor(rand() * 1e9),
            senderChainKey: { iteration: 0, seed: bytes(rand, 32).toString('base64') },
          },
        ]),
      );
    case 'sender-key-memory':
      return { '15551234567:1@s.whatsapp.net': true, '98765432101234@lid': rand() < 0.5 };
    case 'app-state-sync-key':
      return proto.Message.AppStateSyncKeyData.fromObject({
        keyData: bytes(rand, 32),
        fingerprint: { rawId: Math.floor(rand() * 1e6), currentIndex: 1, deviceIndexes: [0, 1] },
        timestamp: 1700000000000 + Math.floor(rand() * 1e6),
      });
    case 'app-state-sync-version':
      return {
        version: Math.floor(rand() * 1000),
        hash: bytes(rand, 128),
        indexValueMap: Object.fromEntries(
          Array.from({ length: 5 }, () => [bytes(rand, 32).toString('base64'), { valueMac: bytes(rand, 32) }]),
        ),
      };
    case 'lid-mapping':
      return String(Math.floor(rand() * 1e14));
    case 'device-list':
      return ['0', '1', String(Math.floor(rand() * 20))];
    case 'tctoken':
      return { token: bytes(rand, 24), timestamp: String(1700000000 + Math.floor(rand() * 1e6)) };
    case 'identity-key':
      return Buffer.concat([Buffer.from([5]), bytes(rand, 32)]);
    default:
      throw new Error(`no generator for ${type}`);
  }
}
