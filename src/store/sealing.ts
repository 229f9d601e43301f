/**
 * Sealing (README "Encryption at rest": `WA_SECRET` seals every stored value): key derivation, the stored parameters,
 * and sealing and unsealing one value. It knows nothing of stores; src/store/sealed.ts applies it to one
 * (SealedStore), and `wa rekey` uses it to re-seal a whole database.
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
import { storageError, type WaError } from '../errors.js';
import { CREDS_KEY, ENCRYPTION_META_KEY } from './codec.js';

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
