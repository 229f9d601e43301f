/**
 * Correct signature checks for Baileys 7.0.0-rc14.
 *
 * rc14's `Curve.verify` wraps libsignal's `verifySignature` in try/catch, but libsignal 6 *returns* false
 * instead of throwing, so every 64-byte signature passes: the server's certificate chain and the phone's
 * account signature at pairing are not really checked (the same bug was flagged on
 * https://github.com/WhiskeySockets/Baileys/pull/2067). rc14 also never binds the leaf certificate to the
 * server's Noise static key, so a replayed genuine chain would pass even with a correct verify, and it
 * checks the intermediate's issuer serial but never that the leaf was issued by that intermediate.
 *
 * This module replaces `Curve.verify` on the very module instance Baileys uses (a plain, writable object
 * read at call time) and adds what is missing. `processHandshake` (lib/Utils/noise-handler.js) calls
 * `Curve.sharedKey` with the server's static key, then `proto.CertChain.decode`, then verifies the leaf and
 * the intermediate, all synchronously; the wrapped `decode` tells which verify call is the leaf's (by its
 * bytes), so account signatures at pairing are never mistaken for it. A self-test runs before the first
 * socket and wa refuses to connect if it fails. Re-check on every Baileys upgrade.
 *
 * Why a check failed travels with the connection it belongs to: each socket is made inside its own
 * `IdentityProbe` scope (an AsyncLocalStorage that Baileys' WebSocket callbacks inherit), so with many
 * sessions in one process no session is ever told another's failure.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { ExitCode, WaError } from '../errors.js';

type Baileys = typeof import('@whiskeysockets/baileys');
type Bytes = Uint8Array;
type DecodedChain = ReturnType<Baileys['proto']['CertChain']['decode']>;
type VerifySignature = (pubKey: Buffer, message: Bytes, signature: Bytes) => boolean;

/** What one connection's identity checks found; undefined failure means nothing failed (yet). */
export interface IdentityProbe {
  failure: string | undefined;
}

interface HandshakeScope {
  probe: IdentityProbe | undefined;
  /** The key of the last Curve.sharedKey call: in a handshake, the server's Noise static key. */
  peerKey?: Buffer;
  /** The chain decoded by the handshake in progress, with the static key it must certify. */
  chain?: { leaf: Buffer | undefined; intermediate: Buffer | undefined; staticKey: Buffer | undefined };
}

const scopes = new AsyncLocalStorage<HandshakeScope>();
/** Sockets made outside any probe (none of wa's own) still get correct checks, without failure reports. */
const unscoped: HandshakeScope = { probe: undefined };
const scope = (): HandshakeScope => scopes.getStore() ?? unscoped;

/** Runs `fn` (which makes a socket) so that every identity check of that socket reports to `probe`. */
export function withIdentityProbe<T>(probe: IdentityProbe, fn: () => T): T {
  return scopes.run({ probe }, fn);
}

const INSTALLED = Symbol.for('wa.verify-identity');

/** Installs the checks into this Baileys instance (idempotent) and proves they work; throws if not. */
export function installIdentityChecks(baileys: Baileys): void {
  const curveObject = baileys.Curve as Baileys['Curve'] & { [INSTALLED]?: true };
  if (!curveObject[INSTALLED]) {
    // Baileys' own copy of libsignal, wherever the package manager put it.
    const requireFromBaileys = createRequire(import.meta.resolve('@whiskeysockets/baileys'));
    const { verifySignature } = requireFromBaileys('libsignal/src/curve.js') as { verifySignature: VerifySignature };
    const { sharedKey } = curveObject;
    const { proto, generateSignalPubKey } = baileys;
    const certChain = proto.CertChain as unknown as { decode: (...args: unknown[]) => DecodedChain };
    const decodeChain = certChain.decode.bind(certChain);

    curveObject.sharedKey = (privateKey, publicKey) => {
      scope().peerKey = Buffer.from(publicKey);
      return sharedKey(privateKey, publicKey);
    };
    certChain.decode = (...args: unknown[]) => {
      const chain = decodeChain(...args);
      const s = scope();
      s.chain = {
        leaf: chain.leaf?.details ? Buffer.from(chain.leaf.details) : undefined,
        intermediate: chain.intermediate?.details ? Buffer.from(chain.intermediate.details) : undefined,
        staticKey: s.peerKey,
      };
      return chain;
    };
    curveObject.verify = (pubKey: Bytes, message: Bytes, signature: Bytes): boolean => {
      const s = scope();
      const fail = (why: string): false => {
        if (s.probe) s.probe.failure = why;
        return false;
      };
      let valid = false;
      try {
        valid = verifySignature(Buffer.from(generateSignalPubKey(pubKey)), message, signature) === true;
      } catch {
        valid = false;
      }
      if (!valid) return fail('a signature did not verify');
      const chain = s.chain;
      if (chain?.leaf && chain.leaf.equals(Buffer.from(message))) {
        const why = leafProblem(proto, chain.leaf, chain.intermediate, chain.staticKey);
        if (why) return fail(why);
      }
      return true;
    };
    curveObject[INSTALLED] = true;
  }
  selfTest(baileys);
}

/**
 * Why a leaf certificate must be refused, or undefined when it is sound: it must decode, carry a 32-byte
 * key equal to the static key the server used in this very handshake (else a recorded genuine chain could
 * front any server), and name the intermediate's serial as its issuer (whatsmeow's check too). Any
 * malformed part fails closed.
 */
function leafProblem(
  proto: Baileys['proto'],
  leafBytes: Buffer,
  intermediateBytes: Buffer | undefined,
  staticKey: Buffer | undefined,
): string | undefined {
  const Details = proto.CertChain.NoiseCertificate.Details;
  let leaf: ReturnType<typeof Details.decode>;
  let intermediate: ReturnType<typeof Details.decode> | undefined;
  try {
    leaf = Details.decode(leafBytes);
    intermediate = intermediateBytes ? Details.decode(intermediateBytes) : undefined;
  } catch {
    return "the server's certificate chain is malformed";
  }
  if (!leaf.key || leaf.key.length !== 32) return "the server's leaf certificate has no valid key";
  if (!staticKey || !Buffer.from(leaf.key).equals(staticKey)) {
    return "the server's certificate does not match its Noise static key";
  }
  if (!intermediate || (leaf.issuerSerial ?? null) !== (intermediate.serial ?? null)) {
    return "the server's leaf certificate was not issued by its intermediate (serial mismatch)";
  }
  return undefined;
}

function selfTest({ Curve, proto }: Baileys): void {
  const Details = proto.CertChain.NoiseCertificate.Details;
  const pair = Curve.generateKeyPair();
  const intermediate = Curve.generateKeyPair();
  const serverStatic = Curve.generateKeyPair();
  const message = Buffer.from('wa identity self-test');
  const signature = Buffer.from(Curve.sign(pair.private, message));
  const interDetails = Buffer.from(Details.encode({ key: intermediate.public, serial: 1 }).finish());
  const leafFor = (key: Bytes, issuerSerial = 1): Buffer =>
    Buffer.from(Details.encode({ key, serial: 2, issuerSerial }).finish());

  /** One handshake's leaf check, as processHandshake makes it: sharedKey(static), decode, verify. */
  const handshake = (leafDetails: Buffer): { ok: boolean; failure: string | undefined } => {
    const probe: IdentityProbe = { failure: undefined };
    const ok = withIdentityProbe(probe, () => {
      Curve.sharedKey(pair.private, serverStatic.public);
      const chain = proto.CertChain.encode({
        leaf: { details: leafDetails, signature: Curve.sign(intermediate.private, leafDetails) },
        intermediate: { details: interDetails, signature: Curve.sign(pair.private, interDetails) },
      }).finish();
      const decoded = proto.CertChain.decode(chain);
      return Curve.verify(intermediate.public, decoded.leaf!.details!, decoded.leaf!.signature!);
    });
    return { ok, failure: probe.failure };
  };

  const probe: IdentityProbe = { failure: undefined };
  const plain = withIdentityProbe(probe, () => [
    Curve.verify(pair.public, message, signature),
    !Curve.verify(pair.public, message, Buffer.alloc(64)),
    !Curve.verify(pair.public, Buffer.from('wa identity self-tesT'), signature),
    !Curve.verify(intermediate.public, message, signature),
  ]);
  const checks: Array<[string, boolean]> = [
    ['a valid signature verifies', plain[0]!],
    ['an all-zero signature is rejected', plain[1]!],
    ['a changed message is rejected', plain[2]!],
    ['a wrong key is rejected', plain[3]!],
    ['a failure is reported to its own probe', probe.failure === 'a signature did not verify'],
    ['a leaf for the static key verifies', handshake(leafFor(serverStatic.public)).ok],
    ['a leaf for another static key is rejected', !handshake(leafFor(intermediate.public)).ok],
    [
      'a leaf without a key is rejected',
      !handshake(Buffer.from(Details.encode({ serial: 2, issuerSerial: 1 }).finish())).ok,
    ],
    ['a leaf with a short key is rejected', !handshake(leafFor(serverStatic.public.subarray(0, 16))).ok],
    ['a leaf issued under another serial is rejected', !handshake(leafFor(serverStatic.public, 9)).ok],
  ];
  const failed = checks.filter(([, ok]) => !ok).map(([name]) => name);
  if (failed.length > 0) {
    throw new WaError(
      ExitCode.unexpected,
      'E_VERIFY_SELFTEST',
      `refusing to connect: signature verification does not work with this Baileys build (${failed.join('; ')})`,
    );
  }
}
