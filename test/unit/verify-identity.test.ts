import * as baileys from '@whiskeysockets/baileys';
import { describe, expect, it } from 'vitest';
import { installIdentityChecks, takeIdentityFailure } from '../../src/session/verify-identity.js';

describe('installIdentityChecks', () => {
  it('makes Curve.verify reject what rc14 accepts, and binds the leaf to the Noise static key', () => {
    const { Curve, proto } = baileys;
    const pair = Curve.generateKeyPair();
    const message = Buffer.from('hello world');
    const zeros = Buffer.alloc(64);
    // The bug this fixes: as shipped, any 64-byte signature verifies.
    const shipped = Curve.verify(pair.public, message, zeros);

    installIdentityChecks(baileys);
    installIdentityChecks(baileys); // idempotent
    expect(Curve.verify(pair.public, message, Buffer.from(Curve.sign(pair.private, message)))).toBe(true);
    expect(Curve.verify(pair.public, message, zeros)).toBe(false);
    expect(takeIdentityFailure()).toBe('a signature did not verify');
    // If this starts failing, Baileys fixed Curve.verify itself: revisit src/session/verify-identity.ts.
    expect(shipped).toBe(true);

    const intermediate = Curve.generateKeyPair();
    const serverStatic = Curve.generateKeyPair();
    const leaf = Buffer.from(
      proto.CertChain.NoiseCertificate.Details.encode({ key: serverStatic.public, serial: 7 }).finish(),
    );
    const leafSignature = Buffer.from(Curve.sign(intermediate.private, leaf));
    Curve.sharedKey(Curve.generateKeyPair().private, serverStatic.public);
    expect(Curve.verify(intermediate.public, leaf, leafSignature)).toBe(true);
    Curve.sharedKey(Curve.generateKeyPair().private, Curve.generateKeyPair().public);
    expect(Curve.verify(intermediate.public, leaf, leafSignature)).toBe(false);
    expect(takeIdentityFailure()).toContain('does not match its Noise static key');
  });
});
