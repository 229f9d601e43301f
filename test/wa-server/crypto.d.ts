export interface KeyPair {
  private: Buffer;
  public: Buffer;
}
export declare const BAILEYS_ENTRY: string;
export declare function deriveKeyPair(seed: string, label: string): KeyPair;
export declare function deriveBytes(seed: string, label: string, length?: number): Buffer;
export declare function xeddsaSign(privateKey: Buffer, message: Uint8Array): Buffer;
/** correct XEdDSA verification (libsignal verifySignature === true) */
export declare function xeddsaVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
export declare function corruptSignature(sig: Uint8Array): Buffer;
