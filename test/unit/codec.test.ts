import { BufferJSON as BaileysBufferJSON, proto } from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { BufferJSON, dataKeyFor, keyTypeOf, KEY_TYPES } from '../../src/store/codec.js';
import { ID_POOLS, prng, valueFor } from '../helpers/baileys-values.js';

describe('codec', () => {
  it("serializes every key type exactly as Baileys' BufferJSON does", () => {
    const rand = prng(42);
    for (const type of KEY_TYPES) {
      const value = valueFor(type, rand);
      const ours = JSON.stringify(value, BufferJSON.replacer);
      expect(ours, type).toBe(JSON.stringify(value, BaileysBufferJSON.replacer));
      expect(JSON.parse(ours, BufferJSON.reviver), type).toEqual(JSON.parse(ours, BaileysBufferJSON.reviver));
    }
  });

  it('handles the odd shapes the same way too', () => {
    const odd = [
      new Uint8Array([1, 2, 3]),
      { type: 'Buffer', data: [4, 5] },
      { 0: 1, 1: 2 },
      { 0: 'a' },
      [],
      {},
      { nested: { deep: Buffer.from('hi') } },
      proto.Message.AppStateSyncKeyData.fromObject({ keyData: Buffer.alloc(3, 1), timestamp: 5 }),
    ];
    for (const value of odd) {
      const text = JSON.stringify(value, BufferJSON.replacer);
      expect(text).toBe(JSON.stringify(value, BaileysBufferJSON.replacer));
      expect(JSON.parse(text, BufferJSON.reviver)).toEqual(JSON.parse(text, BaileysBufferJSON.reviver));
    }
  });

  it('names data keys as useMultiFileAuthState names files', () => {
    expect(dataKeyFor('app-state-sync-key', 'AAAAAB/+')).toBe('app-state-sync-key-AAAAAB__+');
    expect(dataKeyFor('session', '555:1@s.whatsapp.net')).toBe('session-555-1@s.whatsapp.net');
    expect(dataKeyFor('tctoken', '__index')).toBe('tctoken-__index');
  });

  it('finds the key type of a data key, longest prefix first', () => {
    expect(keyTypeOf('sender-key-memory-120363@g.us')).toBe('sender-key-memory');
    expect(keyTypeOf('sender-key-120363@g.us--1--0')).toBe('sender-key');
    expect(keyTypeOf('app-state-sync-version-regular')).toBe('app-state-sync-version');
    expect(keyTypeOf('app-state-sync-key-AAAA')).toBe('app-state-sync-key');
    expect(keyTypeOf('pre-key-')).toBeUndefined();
    expect(keyTypeOf('creds')).toBeUndefined();
    expect(keyTypeOf('notes')).toBeUndefined();
    for (const type of KEY_TYPES) for (const id of ID_POOLS[type]!) expect(keyTypeOf(dataKeyFor(type, id))).toBe(type);
  });
});
