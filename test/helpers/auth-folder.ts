import { initAuthCreds, useMultiFileAuthState } from '@whiskeysockets/baileys';
import { KEY_TYPES } from '../../src/store/codec.js';
import { ID_POOLS, prng, valueFor } from './baileys-values.js';

/** Writes a realistic useMultiFileAuthState folder (paired creds, every key type) with Baileys itself. */
export async function makeBaileysFolder(folder: string, seed = 7): Promise<void> {
  const rand = prng(seed);
  const { state, saveCreds } = await useMultiFileAuthState(folder);
  Object.assign(state.creds, initAuthCreds(), {
    me: { id: '15551234567:4@s.whatsapp.net', name: 'Ada Lovelace', lid: '98765432101234:4@lid' },
    account: {
      details: Buffer.alloc(40, 1),
      accountSignatureKey: Buffer.alloc(32, 2),
      accountSignature: Buffer.alloc(64, 3),
      deviceSignature: Buffer.alloc(64, 4),
    },
    platform: 'android',
  });
  await saveCreds();
  for (const type of KEY_TYPES) {
    const entries: Record<string, unknown> = {};
    for (const id of ID_POOLS[type]!) entries[id] = valueFor(type, rand);
    await state.keys.set({ [type]: entries });
  }
}
