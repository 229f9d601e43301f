import * as baileys from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { installIdentityChecks, withIdentityProbe, type IdentityProbe } from '../../src/session/verify-identity.js';

const { Curve, proto } = baileys;
const Details = proto.CertChain.NoiseCertificate.Details;

/**
 * One handshake's leaf check as rc14's processHandshake makes it: sharedKey(static), decode the chain,
 * verify; in the caller's probe scope, or in `probe`'s when given.
 */
function handshake(leafDetails: Uint8Array, staticKey: Uint8Array, probe?: IdentityProbe): boolean {
  const intermediate = Curve.generateKeyPair();
  const interDetails = Details.encode({ key: intermediate.public, serial: 1 }).finish();
  const check = (): boolean => {
    Curve.sharedKey(Curve.generateKeyPair().private, staticKey);
    const chain = proto.CertChain.decode(
      proto.CertChain.encode({
        leaf: { details: leafDetails, signature: Curve.sign(intermediate.private, leafDetails) },
        intermediate: { details: interDetails, signature: Buffer.alloc(64) },
      }).finish(),
    );
    return Curve.verify(intermediate.public, chain.leaf!.details!, chain.leaf!.signature!);
  };
  return probe ? withIdentityProbe(probe, check) : check();
}

describe('installIdentityChecks', () => {
  it('makes Curve.verify reject what rc14 accepts', () => {
    const pair = Curve.generateKeyPair();
    const message = Buffer.from('hello world');
    const zeros = Buffer.alloc(64);
    // The bug this fixes: as shipped, any 64-byte signature verifies.
    const shipped = Curve.verify(pair.public, message, zeros);

    installIdentityChecks(baileys);
    installIdentityChecks(baileys); // idempotent
    const probe: IdentityProbe = { failure: undefined };
    withIdentityProbe(probe, () => {
      expect(Curve.verify(pair.public, message, Buffer.from(Curve.sign(pair.private, message)))).toBe(true);
      expect(probe.failure).toBeUndefined();
      expect(Curve.verify(pair.public, message, zeros)).toBe(false);
    });
    expect(probe.failure).toBe('a signature did not verify');
    // If this starts failing, Baileys fixed Curve.verify itself: revisit src/session/verify-identity.ts.
    expect(shipped).toBe(true);
  });

  it('binds the leaf to the Noise static key and to its intermediate, failing closed on a malformed leaf', () => {
    installIdentityChecks(baileys);
    const serverStatic = Curve.generateKeyPair().public;
    const leaf = (fields: { key?: Uint8Array; issuerSerial?: number }): Uint8Array =>
      Details.encode({ serial: 2, issuerSerial: 1, ...fields }).finish();
    const cases: Array<[string, Uint8Array, string | undefined]> = [
      ['a sound leaf', leaf({ key: serverStatic }), undefined],
      ['a leaf for another key', leaf({ key: Curve.generateKeyPair().public }), 'does not match its Noise static key'],
      ['a leaf without a key', leaf({}), 'has no valid key'],
      ['a leaf with a short key', leaf({ key: serverStatic.subarray(0, 20) }), 'has no valid key'],
      ['a leaf issued by another serial', leaf({ key: serverStatic, issuerSerial: 5 }), 'serial mismatch'],
    ];
    for (const [what, details, failure] of cases) {
      const probe: IdentityProbe = { failure: undefined };
      expect(handshake(details, serverStatic, probe), what).toBe(failure === undefined);
      if (failure === undefined) expect(probe.failure, what).toBeUndefined();
      else expect(probe.failure, what).toContain(failure);
    }
  });

  it("reports a failure to its own connection only: a healthy session is never told another's", async () => {
    installIdentityChecks(baileys);
    const serverStatic = Curve.generateKeyPair().public;
    const forged: IdentityProbe = { failure: undefined };
    const healthy: IdentityProbe = { failure: undefined };
    // Interleaved as two sockets' handshakes are in one serve process: each runs in the async context its
    // socket was made in, after timers, as WebSocket callbacks do.
    await Promise.all([
      withIdentityProbe(forged, async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        handshake(Details.encode({ key: Curve.generateKeyPair().public, issuerSerial: 1 }).finish(), serverStatic);
      }),
      withIdentityProbe(healthy, async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        expect(handshake(Details.encode({ key: serverStatic, issuerSerial: 1 }).finish(), serverStatic)).toBe(true);
      }),
    ]);
    expect(forged.failure).toContain('does not match');
    expect(healthy.failure).toBeUndefined();
  });
});
