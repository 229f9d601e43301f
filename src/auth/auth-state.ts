import type {
  AuthenticationCreds,
  AuthenticationState,
  SignalDataSet,
  SignalDataTypeMap,
} from '@whiskeysockets/baileys';
import { storageError } from '../errors.js';
import { assertSessionId } from '../session-id.js';
import { CREDS_KEY, dataKeyFor, decodeValue, encodeValue, keyTypeOf } from '../store/codec.js';
import { summaryOf } from '../store/creds-summary.js';
import type { SessionStore, ValueChange } from '../store/types.js';

export interface StoreAuthState {
  /** Pass as `auth` to `makeWASocket`. */
  state: AuthenticationState;
  /** Saves the whole `state.creds` atomically; call it on every `creds.update`. */
  saveCreds: () => Promise<void>;
  /** Deletes the session's creds and keys (the session stays registered, `unpaired`). */
  clear: () => Promise<void>;
}

const LIST_BATCH = 500;

/**
 * The id Baileys used for a stored data key. The file name mapping (`/` to `__`, `:` to `-`) is not
 * reversible in general, so only what the id formats make unambiguous is undone, as upstream Baileys'
 * listIds does: sender-key ids hold `::` separators (`--` on disk, and no other `-` pair), app-state-sync
 * key ids are base64, whose alphabet has `/` but no `_`. Everything else, tctoken's `__index` included,
 * is taken as stored.
 */
export function idOfDataKey(type: keyof SignalDataTypeMap, dataKey: string): string {
  const id = dataKey.slice(type.length + 1);
  if (type === 'sender-key') return id.replace(/--/g, '::');
  if (type === 'app-state-sync-key') return id.replace(/__/g, '/');
  return id;
}

function decodeStored(sessionId: string, dataKey: string, text: string): unknown {
  try {
    return decodeValue(text);
  } catch (error) {
    throw storageError('E_CORRUPT', `session '${sessionId}': stored value '${dataKey}' is not valid JSON`, {
      hint: dataKey === CREDS_KEY ? `wa logout ${sessionId} --force, then wa connect ${sessionId}` : undefined,
      cause: error,
    });
  }
}

const isKeyPair = (value: unknown): boolean => {
  const pair = value as { public?: unknown; private?: unknown } | null | undefined;
  return Buffer.isBuffer(pair?.public) && Buffer.isBuffer(pair?.private);
};

/**
 * What every creds object Baileys writes has (initAuthCreds sets them all, and they never go away); a
 * stored value without them (JSON null, {}, [], "x", 0 from a foreign writer or a bug) is not creds, and
 * handing it to Baileys would make it crash or, worse, silently start a new identity.
 */
function credsProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}, not a creds object`;
  }
  const creds = value as Record<string, unknown>;
  const missing = [
    !isKeyPair(creds.noiseKey) && 'noiseKey',
    !isKeyPair(creds.signedIdentityKey) && 'signedIdentityKey',
    typeof creds.registrationId !== 'number' && 'registrationId',
  ].filter((name): name is string => typeof name === 'string');
  return missing.length > 0 ? `is not Baileys credentials (missing or invalid: ${missing.join(', ')})` : undefined;
}

/**
 * Reads a session's creds as Baileys will see them; undefined only when no creds row exists. A row that
 * is not valid JSON, or not a creds object, is E_CORRUPT (exit 5) naming the session and key; the row is
 * left as it is (never replaced by fresh creds).
 */
export async function loadCreds(store: SessionStore, sessionId: string): Promise<AuthenticationCreds | undefined> {
  const text = await store.readCreds(sessionId);
  if (text === undefined) return undefined;
  const value = decodeStored(sessionId, CREDS_KEY, text);
  const problem = credsProblem(value);
  if (problem) {
    throw storageError('E_CORRUPT', `session '${sessionId}': stored value '${CREDS_KEY}' ${problem}`, {
      hint: `wa logout ${sessionId} --force, then wa connect ${sessionId}`,
    });
  }
  return value as AuthenticationCreds;
}

/**
 * A Baileys auth state over any SessionStore, equivalent to `useMultiFileAuthState` value for value:
 * the same keys, the same bytes, `null` (and any falsy value) deletes, missing ids read as `null`.
 * Unlike the file store it never turns unreadable creds into fresh ones (a new identity, a new QR):
 * corrupt data throws a storage error naming the session and key.
 */
export interface StoreAuthStateOptions {
  /**
   * The lease owner id of this process: every keys.set and saveCreds then commits only while that owner
   * holds the session's live lease, and throws E_LEASE_LOST (applying nothing) once it does not.
   */
  fence?: string | undefined;
}

export async function useStoreAuthState(
  store: SessionStore,
  sessionId: string,
  options: StoreAuthStateOptions = {},
): Promise<StoreAuthState> {
  const writeOptions = { fence: options.fence };
  assertSessionId(sessionId);
  // Baileys is loaded only here (library users and socket-opening commands have it loaded anyway).
  const { initAuthCreds, proto } = await import('@whiskeysockets/baileys');
  await store.ensureSession(sessionId);
  const stored = await loadCreds(store, sessionId);
  const creds = stored === undefined ? initAuthCreds() : stored;

  const revive = (type: keyof SignalDataTypeMap, dataKey: string, text: string | undefined): unknown => {
    const value: unknown = text === undefined ? null : decodeStored(sessionId, dataKey, text);
    // protobufjs' toJSON turned the Buffer into base64 and the Long into a string; fromObject restores
    // both, exactly as useMultiFileAuthState does.
    return type === 'app-state-sync-key' && value ? proto.Message.AppStateSyncKeyData.fromObject(value) : value;
  };
  /** The stored data keys of one type with the ids Baileys used for them (see idOfDataKey). */
  const keysOfType = async (type: keyof SignalDataTypeMap): Promise<Array<[id: string, dataKey: string]>> =>
    (await store.listKeys(sessionId))
      .filter((dataKey) => keyTypeOf(dataKey) === type)
      .map((dataKey) => [idOfDataKey(type, dataKey), dataKey]);

  const keys = {
    async get<T extends keyof SignalDataTypeMap>(
      type: T,
      ids: string[],
    ): Promise<{ [id: string]: SignalDataTypeMap[T] }> {
      const dataKeys = ids.map((id) => dataKeyFor(type, id));
      const found = await store.readValues(sessionId, dataKeys);
      const result: { [id: string]: SignalDataTypeMap[T] } = {};
      ids.forEach((id, i) => {
        const dataKey = dataKeys[i]!;
        result[id] = revive(type, dataKey, found.get(dataKey)) as SignalDataTypeMap[T];
      });
      return result;
    },
    /**
     * The key-store enumeration of Baileys' next API (SignalKeyStore.listIds upstream, used by its
     * migrateAuthState): every stored id of one type, as it was passed to set().
     */
    async *listIds<T extends keyof SignalDataTypeMap>(type: T): AsyncIterable<string> {
      for (const [id] of await keysOfType(type)) yield id;
    },
    /** Every stored [id, value] of one type (SignalKeyStore.list upstream), read in batches. */
    async *list<T extends keyof SignalDataTypeMap>(type: T): AsyncIterable<readonly [string, SignalDataTypeMap[T]]> {
      const all = await keysOfType(type);
      for (let i = 0; i < all.length; i += LIST_BATCH) {
        const batch = all.slice(i, i + LIST_BATCH);
        const found = await store.readValues(
          sessionId,
          batch.map(([, dataKey]) => dataKey),
        );
        for (const [id, dataKey] of batch) {
          const text = found.get(dataKey);
          if (text !== undefined) yield [id, revive(type, dataKey, text) as SignalDataTypeMap[T]] as const;
        }
      }
    },
    /** Deletes every signal key of the session and keeps its creds (SignalKeyStore.clear). */
    async clear(): Promise<void> {
      await store.clearKeys(sessionId, writeOptions);
    },
    async set(data: SignalDataSet): Promise<void> {
      const changes: ValueChange[] = [];
      for (const type in data) {
        const values = data[type as keyof SignalDataSet] as Record<string, unknown> | undefined;
        for (const id in values) {
          const value = values[id];
          changes.push([dataKeyFor(type, id), value ? encodeValue(value) : null]);
        }
      }
      // One call, one transaction: Baileys retries a commit that throws, so it must never half-apply.
      await store.writeValues(sessionId, changes, writeOptions);
    },
  };

  // Creds writes of this session run one after another, each encoding `creds` when its turn comes: on a
  // pool (PostgreSQL) two overlapping writes could otherwise commit out of order, an older snapshot last,
  // rolling back e.g. nextPreKeyId. A failed write fails its caller only; the chain goes on.
  let credsChain: Promise<void> = Promise.resolve();
  const saveCreds = (): Promise<void> => {
    const write = credsChain.then(() =>
      store.writeCreds(sessionId, encodeValue(creds), summaryOf(creds), writeOptions),
    );
    credsChain = write.catch(() => undefined);
    return write;
  };

  return {
    state: { creds, keys },
    saveCreds,
    clear: () => store.clearAuth(sessionId),
  };
}
