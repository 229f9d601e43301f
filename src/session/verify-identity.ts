/**
 * Correct signature checks for Baileys 7.0.0-rc14.
 *
 * rc14's `Curve.verify` wraps libsignal's `verifySignature` in try/catch, but libsignal 6 *returns* false
 * instead of throwing, so every 64-byte signature passes: the server's certificate chain and the phone's
 * account signature at pairing are not really checked (shared/reference/cert-verify.md; the same bug was
 * flagged on https://github.com/WhiskeySockets/Baileys/pull/2067). rc14 also never binds the leaf
 * certificate to the server's Noise static key, so a replayed genuine chain would pass even with a correct
 * verify. This module replaces `Curve.verify` on the very module instance Baileys uses (a plain, writable
 * object read at call time) and adds the binding. It depends on rc14's call order in
 * `processHandshake` (sharedKey(static) immediately before the leaf verify, all synchronous), so a self-test
 * runs before the first socket and wa refuses to connect if it fails. Re-check on every Baileys upgrade.
 */
import { createRequire } from 'node:module';
import { WaError, ExitCode } from '../errors.js';

type Baileys = typeof import('@whiskeysockets/baileys');
type Bytes = Uint8Array;
type VerifySignature = (pubKey: Buffer, message: Bytes, signature: Bytes) => boolean;

const INSTALLED = Symbol.for('wa.verify-identity');
let lastFailure: string | undefined;

/** Why the last identity check failed, for a clearer message than Baileys' own. Reading clears it. */
export function takeIdentityFailure(): string | undefined {
  const failure = lastFailure;
  lastFailure = undefined;
  return failure;
}

/** Installs the checks into this Baileys instance (idempotent) and proves they work; throws if not. */
export function installIdentityChecks(baileys: Baileys): void {
  const curveObject = baileys.Curve as Baileys['Curve'] & { [INSTALLED]?: true };
  if (!curveObject[INSTALLED]) {
    // Baileys' own copy of libsignal, wherever the package manager put it.
    const requireFromBaileys = createRequire(import.meta.resolve('@whiskeysockets/baileys'));
    const { verifySignature } = requireFromBaileys('libsignal/src/curve.js') as { verifySignature: VerifySignature };
    const { sharedKey } = curveObject;
    const { proto, WA_CERT_DETAILS, generateSignalPubKey } = baileys;
    let lastPeerKey: Buffer | undefined;

    curveObject.sharedKey = (privateKey, publicKey) => {
      lastPeerKey = Buffer.from(publicKey);
      return sharedKey(privateKey, publicKey);
    };
    curveObject.verify = (pubKey: Bytes, message: Bytes, signature: Bytes): boolean => {
      let valid = false;
      try {
        valid = verifySignature(Buffer.from(generateSignalPubKey(pubKey)), message, signature) === true;
      } catch {
        valid = false;
      }
      if (!valid) {
        lastFailure = 'a signature did not verify';
        return false;
      }
      // The leaf certificate (signed by the intermediate, not the root) must certify the very static key
      // the server used in this handshake; otherwise a recorded genuine chain could front any server.
      if (!Buffer.from(pubKey).equals(Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY))) {
        const leafKey = noiseCertificateKey(proto, message);
        if (leafKey && !(lastPeerKey && leafKey.equals(lastPeerKey))) {
          lastFailure = "the server's certificate does not match its Noise static key";
          return false;
        }
      }
      return true;
    };
    curveObject[INSTALLED] = true;
  }
  selfTest(baileys);
}

/** The `key` of a NoiseCertificate.Details message, or undefined when the bytes are something else (ADV). */
function noiseCertificateKey(proto: Baileys['proto'], message: Bytes): Buffer | undefined {
  try {
    const key = proto.CertChain.NoiseCertificate.Details.decode(message).key;
    return key && key.length === 32 ? Buffer.from(key) : undefined;
  } catch {
    return undefined;
  }
}

function selfTest({ Curve, proto }: Baileys): void {
  const pair = Curve.generateKeyPair();
  const message = Buffer.from('wa identity self-test');
  const signature = Buffer.from(Curve.sign(pair.private, message));
  const other = Curve.generateKeyPair();
  Curve.sharedKey(other.private, other.public);
  const leafDetails = Buffer.from(
    proto.CertChain.NoiseCertificate.Details.encode({ key: pair.public, serial: 1 }).finish(),
  );
  const leafSignature = Buffer.from(Curve.sign(other.private, leafDetails));
  const checks: Array<[string, boolean]> = [
    ['a valid signature verifies', Curve.verify(pair.public, message, signature)],
    ['an all-zero signature is rejected', !Curve.verify(pair.public, message, Buffer.alloc(64))],
    ['a changed message is rejected', !Curve.verify(pair.public, Buffer.from('wa identity self-tesT'), signature)],
    ['a wrong key is rejected', !Curve.verify(other.public, message, signature)],
    // The last shared key was `other`'s, so a validly signed leaf certifying `pair` must be refused.
    ['a leaf for another static key is rejected', !Curve.verify(other.public, leafDetails, leafSignature)],
  ];
  Curve.sharedKey(other.private, pair.public);
  checks.push(['a leaf for the static key verifies', Curve.verify(other.public, leafDetails, leafSignature)]);
  takeIdentityFailure();
  const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
  if (failed.length > 0) {
    throw new WaError(
      ExitCode.unexpected,
      'E_VERIFY_SELFTEST',
      `refusing to connect: signature verification does not work with this Baileys build (${failed.join('; ')})`,
    );
  }
}
