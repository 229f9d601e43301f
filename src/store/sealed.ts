/**
 * Encryption at rest (SPEC "Security": `WA_SECRET` seals every stored value). SealedStore is a decorator
 * over any SessionStore backend: it seals and unseals `whatsapp_auth.data_value` in the value methods and
 * passes registry, lease and meta calls through, so backends stay plain string stores.
 *
 * - Cipher: AES-256-GCM, a fresh 12-byte IV per value, the 16-byte tag appended. Sealed text is
 *   `wa1:<keyId>:<base64(iv | ciphertext | tag)>`.
 * - AAD: the session id and data key, so a sealed value copied to another row (another key, another
 *   session) fails authentication instead of being accepted.
 * - Key: scrypt(secret, salt) with N=2^15, r=8, p=1 (32 MiB, ~50-100 ms: once per process, not per value),
 *   and a random 16-byte salt per database. The parameters are kept in the backend's meta table under
 *   `encryption`, so they can be raised later without breaking old databases.
 * - Key id: the first 8 bytes of HMAC-SHA256(key, "wa key id"), in hex. It is stored in the meta and in
 *   every value, so a wrong secret is detected before anything is read or written, and a value sealed
 *   under another key (a process still running with an old secret after `wa rekey`) is named as such.
 *   It reveals nothing usable about the key, and checking a guessed secret against it costs a full scrypt.
 *
 * The secret and the derived key are never part of any message, log line or enumerable property.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt } from 'node:crypto';
import { storageError, WaError } from '../errors.js';
import { CREDS_KEY, ENCRYPTION_META_KEY } from './codec.js';
import type {
  CredsSummary,
  Lease,
  MetaInsert,
  LeaseResult,
  SessionPatch,
  SessionRecord,
  SessionStore,
  Takeover,
  ValueChange,
  WriteOptions,
} from './types.js';

export { ENCRYPTION_META_KEY };

const FORMAT = 'wa1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SALT_BYTES = 16;

export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

/** OWASP's scrypt floor is N=2^17 for interactive logins; 2^15 keeps every CLI start fast, and the salt is per database. */
export const DEFAULT_SCRYPT: ScryptCost = { N: 2 ** 15, r: 8, p: 1 };

/** What `getMeta('encryption')` holds, as JSON. */
export interface EncryptionParams extends ScryptCost {
  v: 1;
  kdf: 'scrypt';
  cipher: 'aes-256-gcm';
  /** Base64, random per database (and per `wa rekey`). */
  salt: string;
  keyId: string;
}

function deriveKey(secret: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem: scrypt needs 128·N·r bytes, which is exactly Node's 32 MiB default at N=2^15, r=8.
    scrypt(secret, salt, 32, { ...cost, maxmem: 256 * cost.N * cost.r }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

const keyIdOf = (key: Buffer): string => createHmac('sha256', key).update('wa key id').digest('hex').slice(0, 16);

/** The associated data that binds a sealed value to its row. JSON keeps it unambiguous for any data key. */
const aadOf = (sessionId: string, dataKey: string): Buffer => Buffer.from(JSON.stringify([FORMAT, sessionId, dataKey]));

export const isSealed = (text: string): boolean => text.startsWith(`${FORMAT}:`);

/** Seals and unseals values with one derived key. */
export class Sealer {
  readonly keyId: string;
  // An ES private field: not enumerable, not shown by util.inspect, never serialized.
  readonly #key: Buffer;

  constructor(key: Buffer) {
    this.#key = key;
    this.keyId = keyIdOf(key);
  }

  seal(value: string, sessionId: string, dataKey: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(aadOf(sessionId, dataKey));
    const body = Buffer.concat([iv, cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${FORMAT}:${this.keyId}:${body.toString('base64')}`;
  }

  /** Throws E_UNSEAL (exit 5) naming the session and key when the value is not sealed, or not by this key, or altered. */
  unseal(text: string, sessionId: string, dataKey: string): string {
    const [format, keyId, data] = text.split(':', 3);
    const where = `session '${sessionId}': stored value '${dataKey}'`;
    if (format !== FORMAT || keyId === undefined || data === undefined) {
      throw unsealError(sessionId, dataKey, `${where} is not sealed, though the database is encrypted`);
    }
    if (keyId !== this.keyId) {
      throw unsealError(
        sessionId,
        dataKey,
        `${where} was sealed with key ${keyId}, not with this database's key ${this.keyId} (written by a process still using an old WA_SECRET?)`,
      );
    }
    const body = Buffer.from(data, 'base64');
    if (body.length < IV_BYTES + TAG_BYTES) throw unsealError(sessionId, dataKey, `${where} is truncated`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, body.subarray(0, IV_BYTES));
      decipher.setAAD(aadOf(sessionId, dataKey));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      // No cause: OpenSSL's message says nothing more, and nothing key-related should travel with the error.
      throw unsealError(
        sessionId,
        dataKey,
        `${where} fails authentication: it was altered, or moved from another session or key`,
      );
    }
  }
}

const unsealError = (sessionId: string, dataKey: string, message: string): WaError =>
  storageError('E_UNSEAL', message, {
    hint:
      dataKey === CREDS_KEY
        ? `wa logout ${sessionId} --force, then pair again with wa connect ${sessionId}`
        : undefined,
  });

/** Parses the stored parameters; undefined when the database is not encrypted. */
export function parseEncryptionParams(text: string | undefined, location: string): EncryptionParams | undefined {
  if (text === undefined) return undefined;
  let params: Partial<EncryptionParams> & { v?: unknown };
  try {
    params = JSON.parse(text) as typeof params;
  } catch {
    params = {};
  }
  if (params.v !== 1 || params.kdf !== 'scrypt' || params.cipher !== 'aes-256-gcm') {
    throw storageError(
      'E_ENCRYPTION_META',
      `the database ${location} is encrypted with parameters this wa does not know`,
      { hint: 'upgrade wa (npm install -g wa@latest)' },
    );
  }
  const valid =
    typeof params.salt === 'string' &&
    typeof params.keyId === 'string' &&
    [params.N, params.r, params.p].every((n) => Number.isSafeInteger(n) && (n as number) > 0);
  if (!valid) {
    throw storageError('E_ENCRYPTION_META', `the encryption parameters stored in ${location} are damaged`);
  }
  return params as EncryptionParams;
}

/** Derives the key for stored parameters; a secret whose key id differs is refused (E_WRONG_SECRET, exit 5). */
export async function openSealer(
  secret: string,
  params: EncryptionParams,
  location: string,
  variable = 'WA_SECRET',
): Promise<Sealer> {
  const sealer = new Sealer(await deriveKey(secret, Buffer.from(params.salt, 'base64'), params));
  if (sealer.keyId !== params.keyId) {
    throw storageError(
      'E_WRONG_SECRET',
      `wrong ${variable}: the database ${location} is sealed with key ${params.keyId}, and this secret gives key ${sealer.keyId}; nothing was read or written`,
      { hint: `set ${variable} to the secret the database was sealed with` },
    );
  }
  return sealer;
}

/** A new key: a fresh salt, and the parameters to store beside the values it seals. */
export async function createSealer(
  secret: string,
  cost: ScryptCost = DEFAULT_SCRYPT,
): Promise<{ sealer: Sealer; params: EncryptionParams }> {
  const salt = randomBytes(SALT_BYTES);
  const sealer = new Sealer(await deriveKey(secret, salt, cost));
  const params: EncryptionParams = {
    v: 1,
    kdf: 'scrypt',
    ...cost,
    cipher: 'aes-256-gcm',
    salt: salt.toString('base64'),
    keyId: sealer.keyId,
  };
  return { sealer, params };
}

export const secretRequiredError = (location: string): WaError =>
  storageError('E_SECRET_REQUIRED', `the database ${location} is encrypted and WA_SECRET is not set`, {
    hint: 'set WA_SECRET to the secret it was sealed with (wa status lists sessions without it)',
  });

export interface SealedStoreOptions {
  /** Undefined: values stay in clear, and an encrypted database refuses value reads and writes. */
  secret?: string | undefined;
  /** Whether a fresh database may be initialized for encryption (false for read-only commands). */
  writable?: boolean | undefined;
  /** scrypt cost for a database initialized here; tests lower it. */
  cost?: ScryptCost | undefined;
}

const clearValuesError = (location: string): WaError =>
  storageError(
    'E_NOT_SEALED',
    `WA_SECRET is set, but the database ${location} holds values stored in clear; wa never mixes sealed and clear values`,
    { hint: 'seal it once with WA_NEW_SECRET=<secret> wa rekey, then run with WA_SECRET=<secret>' },
  );

/**
 * Wraps a backend. Whether the database is encrypted, and whether the secret fits, is settled lazily on the
 * first value call (or `unlock()`), so `wa status`, `wa add` and `wa rm` work without the secret and never
 * pay for scrypt. Everything that fails there fails before the call reads or writes any value.
 */
export class SealedStore implements SessionStore {
  readonly inner: SessionStore;
  readonly #secret: string | undefined;
  readonly #writable: boolean;
  readonly #cost: ScryptCost;
  #sealer: Promise<Sealer | null> | undefined;

  constructor(inner: SessionStore, options: SealedStoreOptions = {}) {
    this.inner = inner;
    this.#secret = options.secret === '' ? undefined : options.secret;
    this.#writable = options.writable ?? true;
    this.#cost = options.cost ?? DEFAULT_SCRYPT;
  }

  get backend(): SessionStore['backend'] {
    return this.inner.backend;
  }

  get location(): string {
    return this.inner.location;
  }

  get skippedIds(): readonly string[] {
    return this.inner.skippedIds;
  }

  /** Settles the encryption state now (commands that open sockets call it first, to fail before taking leases). */
  async unlock(): Promise<void> {
    await this.sealer();
  }

  /** The sealer, or null when values are stored in clear. Failures are not cached (the next call tries again). */
  private sealer(): Promise<Sealer | null> {
    this.#sealer ??= this.resolve().catch((error: unknown) => {
      this.#sealer = undefined;
      throw error;
    });
    return this.#sealer;
  }

  private async resolve(): Promise<Sealer | null> {
    const params = parseEncryptionParams(await this.inner.getMeta(ENCRYPTION_META_KEY), this.location);
    if (params) {
      if (this.#secret === undefined) throw secretRequiredError(this.location);
      return openSealer(this.#secret, params, this.location);
    }
    if (this.#secret === undefined) return null;
    if (await this.inner.hasValues()) throw clearValuesError(this.location);
    // A read-only open of an empty database has nothing to unseal, and may not write the parameters.
    if (!this.#writable) return null;
    const created = await createSealer(this.#secret, this.#cost);
    // Several processes may seal a new database at once (replicas starting together): the parameters are
    // inserted only if absent, together with the "no values yet" check, in one transaction. The first
    // writer's salt wins; every other process derives its key from the stored parameters instead of its own.
    const claim = await this.inner.insertMetaIfAbsent(ENCRYPTION_META_KEY, JSON.stringify(created.params), {
      unlessValues: true,
    });
    if (claim.inserted) return created.sealer;
    if (claim.value === undefined) throw clearValuesError(this.location);
    const stored = parseEncryptionParams(claim.value, this.location)!;
    return openSealer(this.#secret, stored, this.location);
  }

  /** Seals one value as this store would store it (tests use it to write raw rows). */
  async seal(sessionId: string, dataKey: string, value: string): Promise<string> {
    const sealer = await this.sealer();
    return sealer ? sealer.seal(value, sessionId, dataKey) : value;
  }

  listSessions(): Promise<SessionRecord[]> {
    return this.inner.listSessions();
  }

  /**
   * The backend checks creds with a JSON test on the stored text, which sealed text always fails; the
   * check is redone here on the unsealed value when the secret is at hand, and skipped when it is not.
   */
  async getSession(id: string): Promise<SessionRecord | undefined> {
    const record = await this.inner.getSession(id);
    if (!record) return record;
    const stored = await this.inner.readCreds(id);
    if (stored === undefined || !isSealed(stored)) return record;
    let sealer: Sealer | null;
    try {
      sealer = await this.sealer();
    } catch (error) {
      if (error instanceof WaError) return { ...record, corruptKey: null };
      throw error;
    }
    if (!sealer) return { ...record, corruptKey: null };
    try {
      JSON.parse(sealer.unseal(stored, id, CREDS_KEY));
      return { ...record, corruptKey: null };
    } catch {
      return { ...record, corruptKey: CREDS_KEY };
    }
  }

  createSession(id: string, label: string | null): Promise<SessionRecord> {
    return this.inner.createSession(id, label);
  }

  ensureSession(id: string): Promise<void> {
    return this.inner.ensureSession(id);
  }

  deleteSession(id: string): Promise<boolean> {
    return this.inner.deleteSession(id);
  }

  updateSession(id: string, patch: SessionPatch): Promise<void> {
    return this.inner.updateSession(id, patch);
  }

  async readCreds(id: string): Promise<string | undefined> {
    const sealer = await this.sealer();
    const stored = await this.inner.readCreds(id);
    return sealer && stored !== undefined ? sealer.unseal(stored, id, CREDS_KEY) : stored;
  }

  async writeCreds(id: string, value: string, summary: CredsSummary, options?: WriteOptions): Promise<void> {
    const sealer = await this.sealer();
    await this.inner.writeCreds(id, sealer ? sealer.seal(value, id, CREDS_KEY) : value, summary, options);
  }

  async readValues(id: string, dataKeys: readonly string[]): Promise<Map<string, string>> {
    const sealer = await this.sealer();
    const found = await this.inner.readValues(id, dataKeys);
    if (!sealer) return found;
    return new Map([...found].map(([key, value]) => [key, sealer.unseal(value, id, key)]));
  }

  async writeValues(id: string, changes: readonly ValueChange[], options?: WriteOptions): Promise<void> {
    const sealer = await this.sealer();
    await this.inner.writeValues(
      id,
      sealer
        ? changes.map(([key, value]): ValueChange => [key, value === null ? null : sealer.seal(value, id, key)])
        : changes,
      options,
    );
  }

  /** Data keys are not sealed (they are the rows' primary key), so listing needs no secret. */
  listKeys(id: string): Promise<string[]> {
    return this.inner.listKeys(id);
  }

  clearKeys(id: string, options?: WriteOptions): Promise<void> {
    return this.inner.clearKeys(id, options);
  }

  async readAll(id: string): Promise<Array<[string, string]>> {
    const sealer = await this.sealer();
    const entries = await this.inner.readAll(id);
    return sealer ? entries.map(([key, value]) => [key, sealer.unseal(value, id, key)]) : entries;
  }

  async replaceAll(id: string, entries: readonly (readonly [string, string])[], summary: CredsSummary): Promise<void> {
    const sealer = await this.sealer();
    await this.inner.replaceAll(
      id,
      sealer ? entries.map(([key, value]) => [key, sealer.seal(value, id, key)] as const) : entries,
      summary,
    );
  }

  clearAuth(id: string): Promise<void> {
    return this.inner.clearAuth(id);
  }

  acquireLease(id: string, owner: Omit<Lease, 'expiresAt'>, ttlMs: number, takeover: Takeover): Promise<LeaseResult> {
    return this.inner.acquireLease(id, owner, ttlMs, takeover);
  }

  renewLease(id: string, ownerId: string, ttlMs: number): Promise<boolean> {
    return this.inner.renewLease(id, ownerId, ttlMs);
  }

  releaseLease(id: string, ownerId: string): Promise<void> {
    return this.inner.releaseLease(id, ownerId);
  }

  renewLeases(ownerId: string, ttlMs: number): Promise<string[]> {
    return this.inner.renewLeases(ownerId, ttlMs);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.inner.getMeta(key);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.inner.setMeta(key, value);
  }

  hasValues(): Promise<boolean> {
    return this.inner.hasValues();
  }

  insertMetaIfAbsent(key: string, value: string, options?: { unlessValues?: boolean }): Promise<MetaInsert> {
    if (key === ENCRYPTION_META_KEY) throw new Error('SealedStore.insertMetaIfAbsent cannot set the encryption meta');
    return this.inner.insertMetaIfAbsent(key, value, options);
  }

  /**
   * Rewrites values as plain text through `transform`, sealed under the current key. Changing the key is
   * `wa rekey`'s job, which works on the backend itself (`inner`): the encryption meta cannot be set here.
   */
  async rewriteAll(
    transform: (value: string, sessionId: string, dataKey: string) => string,
    meta: Readonly<Record<string, string | null>>,
  ): Promise<number> {
    if (ENCRYPTION_META_KEY in meta) throw new Error('SealedStore.rewriteAll cannot change the encryption meta');
    const sealer = await this.sealer();
    if (!sealer) return this.inner.rewriteAll(transform, meta);
    return this.inner.rewriteAll(
      (value, sessionId, dataKey) =>
        sealer.seal(transform(sealer.unseal(value, sessionId, dataKey), sessionId, dataKey), sessionId, dataKey),
      meta,
    );
  }

  permissionWarning(): string | undefined {
    return this.inner.permissionWarning();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Settles encryption before a command takes leases or opens sockets; a no-op for an unwrapped store. */
export async function unlockValues(store: SessionStore): Promise<void> {
  if (store instanceof SealedStore) await store.unlock();
}
