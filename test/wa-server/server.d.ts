// Type declarations for server.js (so TypeScript tests can import it without allowJs).

export type CertMode = 'valid' | 'bad-signature' | 'bad-intermediate-signature' | 'wrong-serial' | 'leaf-not-static';

export interface TestServerOptions {
  /** default '127.0.0.1' */
  host?: string;
  /** default 0 (ephemeral) */
  port?: number;
  /** QR refs per `pair-device` (default 6) */
  refs?: number;
  /** seed for every server-side key (default 'wa-test-server') */
  seed?: string;
  /** numbers that usync reports as registered WhatsApp users (besides paired phones) */
  knownNumbers?: string[];
  /** how long scanQr/enterPairingCode wait for the client's pair-device-sign / companion_finish (default 15000) */
  pairTimeoutMs?: number;
}

export type ConnectionOutcome =
  | 'refused'
  | 'http-error'
  | 'connecting'
  | 'handshake-failed'
  | 'registration'
  | 'bad-registration'
  | 'login'
  | 'rejected-401'
  | 'rejected-405';

export interface ConnectionLogEntry {
  id: number;
  /** Date.now() of the attempt */
  at: number;
  outcome: ConnectionOutcome;
  /** the client sent the `ED` edge-routing intro */
  routed: boolean;
  /** the routing info in the ED intro equals the one this server sent in `edge_routing` */
  routingInfoMatches?: boolean;
  /** device jid of a login attempt */
  jid?: string;
  closedAt?: number;
}

export interface DeviceInfo {
  jid: string;
  lid: string;
  phone: string;
  name: string | undefined;
  removed: boolean;
  online: boolean;
  logins: number;
  /** pre-keys uploaded so far (first login uploads 812) */
  preKeyCount: number;
}

export interface PairedDevice {
  jid: string;
  lid: string;
}

export declare class TestServer {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly rootPublicKey: Uint8Array;
  readonly rootPublicKeyBase64: string;
  /** affects new connections */
  certMode: CertMode;
  /** the next scanQr/enterPairingCode sends an invalid ADV account signature (HMAC still valid); reset after use */
  forgeAccountSignature: boolean;
  /** QR refs sent per registration (option `refs`); may be changed at runtime */
  refsPerPairDevice: number;

  scanQr(qr: string, phone?: { number?: string; name?: string }): Promise<PairedDevice>;
  enterPairingCode(code: string, phoneNumber?: string): Promise<PairedDevice>;
  pendingPairingCodes(): string[];
  devices(): DeviceInfo[];
  connections(): number;
  connectionLog(): ConnectionLogEntry[];
  openConnections(): number;
  waitFor(predicate: () => boolean, timeoutMs?: number): Promise<void>;

  /** returns the number of connections affected */
  drop(jid?: string): number;
  silence(jid?: string, opts?: { stopReading?: boolean }): number;
  conflict(jid: string): number;
  removeDevice(jid: string): number;
  rejectVersion(on: boolean): void;
  refuseConnections(ms: number, opts?: { mode?: 'reset' | 'close' }): Promise<void>;
  httpErrorOnUpgrade(status: number | null): void;
  restart(downMs?: number): Promise<void>;
  close(): Promise<void>;
}

export declare function startTestServer(options?: TestServerOptions): Promise<TestServer>;
