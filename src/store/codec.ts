/**
 * The byte format of auth values, identical to Baileys' `useMultiFileAuthState` files so that
 * `wa import`/`wa export` are plain copies and a seed database can be adopted in place.
 *
 * BufferJSON is re-implemented here (it is 20 lines in Baileys' lib/Utils/generics.js) because importing
 * anything from Baileys pulls in WAProto and costs ~200 ms, and `wa status` must stay fast.
 * test/unit/codec.test.ts checks it against Baileys' own implementation.
 */

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any --
   a JSON replacer/reviver sees arbitrary values by definition; this mirrors Baileys line for line. */
export const BufferJSON = {
  replacer: (_key: string, value: any): unknown => {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array || value?.type === 'Buffer') {
      return { type: 'Buffer', data: Buffer.from(value?.data || value).toString('base64') };
    }
    return value;
  },
  reviver: (_key: string, value: any): unknown => {
    if (typeof value === 'object' && value !== null && value.type === 'Buffer' && typeof value.data === 'string') {
      return Buffer.from(value.data, 'base64');
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.length > 0 && keys.every((k) => !isNaN(parseInt(k, 10)))) {
        const values: unknown[] = Object.values(value);
        if (values.every((v): v is number => typeof v === 'number')) return Buffer.from(values);
      }
    }
    return value;
  },
};
/* eslint-enable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-explicit-any */

export const encodeValue = (value: unknown): string => JSON.stringify(value, BufferJSON.replacer);

export const decodeValue = (text: string): unknown => JSON.parse(text, BufferJSON.reviver) as unknown;

/** The key types of Baileys 7 (lib/Types/Auth.d.ts SignalDataTypeMap). */
export const KEY_TYPES = [
  'pre-key',
  'session',
  'sender-key',
  'sender-key-memory',
  'app-state-sync-key',
  'app-state-sync-version',
  'lid-mapping',
  'device-list',
  'tctoken',
  'identity-key',
] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export const CREDS_KEY = 'creds';

/** The meta key holding the encryption parameters (absent: values are stored in clear; src/store/sealed.ts). */
export const ENCRYPTION_META_KEY = 'encryption';

/**
 * `useMultiFileAuthState` stores `${type}-${id}` under the file name `fixFileName(...)`, which maps `/` to
 * `__` and `:` to `-`. The mapping is not reversible (`tctoken-__index` is a literal `__`), so the database
 * key is the mapped name itself: import and export become copies, and ids that collide in the file store
 * collide here too, keeping the two stores equivalent.
 */
export const dataKeyFor = (type: string, id: string): string => `${type}-${id}`.replace(/\//g, '__').replace(/:/g, '-');

// Types sharing a prefix (`sender-key-memory-` vs `sender-key-`) must be matched longest first.
const TYPES_LONGEST_FIRST = [...KEY_TYPES].sort((a, b) => b.length - a.length);

/** The key type a stored data key (or file name without `.json`) belongs to, or undefined. */
export function keyTypeOf(dataKey: string): KeyType | undefined {
  return TYPES_LONGEST_FIRST.find((type) => dataKey.startsWith(`${type}-`) && dataKey.length > type.length + 1);
}
