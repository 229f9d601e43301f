// @ts-check
/**
 * Key material and signature helpers for the loopback WhatsApp test server.
 *
 * Signatures are real XEdDSA (libsignal `calculateSignature` / `verifySignature`,
 * resolved from the copy of libsignal that Baileys itself loads). Baileys' own
 * `Curve.verify` is deliberately NOT used: in rc14 it accepts every 64-byte
 * signature (src/session/verify-identity.ts explains the rc14 bug).
 */
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { generateSignalPubKey } from '@whiskeysockets/baileys';

const requireHere = createRequire(import.meta.url);
/** absolute path of Baileys' entry module (lib/index.js) */
export const BAILEYS_ENTRY = requireHere.resolve('@whiskeysockets/baileys');
const requireFromBaileys = createRequire(BAILEYS_ENTRY);
const libsignalCurvePath = requireFromBaileys.resolve('libsignal/src/curve.js');
/** @type {{ calculateSignature(priv: Buffer, msg: Buffer): Buffer, verifySignature(pub: Buffer, msg: Buffer, sig: Buffer, isInit?: boolean): boolean }} */
export const signalCurve = requireFromBaileys('libsignal/src/curve.js');
/** @type {{ generateKeyPair(seed: Uint8Array): { private: Uint8Array, public: Uint8Array } }} */
const curveJs = createRequire(libsignalCurvePath)('curve25519-js');

/** @typedef {{ private: Buffer, public: Buffer }} KeyPair  public is the 32-byte Montgomery key (no 0x05 prefix) */

/**
 * Deterministic X25519 key pair from a seed string and a label.
 * @param {string} seed
 * @param {string} label
 * @returns {KeyPair}
 */
export function deriveKeyPair(seed, label) {
  const secret = createHash('sha256').update(`wa-test-server|${seed}|${label}`).digest();
  const kp = curveJs.generateKeyPair(secret);
  return { private: Buffer.from(kp.private), public: Buffer.from(kp.public) };
}

/**
 * Deterministic bytes from a seed string and a label.
 * @param {string} seed
 * @param {string} label
 * @param {number} [length]
 */
export function deriveBytes(seed, label, length = 32) {
  /** @type {Buffer[]} */
  const out = [];
  let n = 0;
  while (out.length * 32 < length) {
    out.push(createHash('sha256').update(`wa-test-server-bytes|${seed}|${label}|${n++}`).digest());
  }
  return Buffer.concat(out).subarray(0, length);
}

/**
 * XEdDSA signature (deterministic: libsignal passes no random nonce to curve25519-js).
 * @param {Buffer} privateKey
 * @param {Uint8Array} message
 * @returns {Buffer}
 */
export function xeddsaSign(privateKey, message) {
  return Buffer.from(signalCurve.calculateSignature(privateKey, Buffer.from(message)));
}

/**
 * Correct XEdDSA verification. Returns true only when libsignal returns exactly `true`.
 * @param {Uint8Array} publicKey 32 or 33 bytes
 * @param {Uint8Array} message
 * @param {Uint8Array} signature
 */
export function xeddsaVerify(publicKey, message, signature) {
  try {
    if (!publicKey || !message || !signature) return false;
    const key = Buffer.from(generateSignalPubKey(Buffer.from(publicKey)));
    return signalCurve.verifySignature(key, Buffer.from(message), Buffer.from(signature)) === true;
  } catch {
    return false;
  }
}

/**
 * Returns a copy of a signature with one bit flipped (still 64 bytes, so Baileys rc14's
 * broken `Curve.verify` accepts it while a correct verifier rejects it).
 * @param {Uint8Array} sig
 */
export function corruptSignature(sig) {
  const copy = Buffer.from(sig);
  copy[10] = (copy[10] ?? 0) ^ 0x01;
  return copy;
}
