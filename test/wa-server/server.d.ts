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
  /** one-time pre-keys of its bundle not handed out by key fetches yet */
  preKeysAvailable: number;
}

export interface MessageLogEntry {
  seq: number;
  at: number;
  /** in: a stanza a device (or simulated phone) sent the server; out: a copy the server delivered */
  dir: 'in' | 'out';
  tag: 'message' | 'receipt' | 'ack';
  id: string;
  /** the endpoint's phone-number device jid (`N:D@s.whatsapp.net`; `N@s.whatsapp.net` for a phone) */
  device: string;
  to?: string;
  from?: string;
  type?: string;
  /** ack in: the stanza class acked */
  class?: string;
  /** ack in: nack code the client sent; message in: the error the server acked with */
  error?: string;
  category?: string;
  /** out: pushed as part of the offline backlog (`offline` attribute) */
  offline?: boolean;
  /** message in: device jids (as addressed) a copy was stored for */
  targets?: string[];
  /** message in */
  outcome?: 'routed' | 'ack-error' | 'dropped-before-ack' | 'lid-migrated';
  /** message in: enc type per target (`pkmsg` / `msg`) */
  encTypes?: string[];
}

export interface MessageLogFilter {
  /** a jid spec: number / user jid (every device of the account) or device jid (`N:0@s.whatsapp.net` = the phone) */
  device?: string;
  tag?: 'message' | 'receipt' | 'ack';
  dir?: 'in' | 'out';
  id?: string;
}

export interface QueuedStanza {
  device: string;
  kind: 'message' | 'receipt';
  id: string;
  from: string;
  type: string | undefined;
  /** how often it was pushed to the device so far */
  pushes: number;
}

export interface PhoneMessage {
  id: string;
  /** `from` of the copy: the sender's device jid (PN or LID) */
  from: string;
  /** normalized chat: the sender, or the destination of an own (DSM) message */
  chat: string;
  /** a copy of a message another device of this account sent */
  fromMe: boolean;
  text: string | undefined;
  encType: 'pkmsg' | 'msg';
  category: string | undefined;
  offline: boolean;
  /** the decoded proto.Message as a plain object */
  message: object;
  at: number;
}

export interface PhoneReceipt {
  id: string;
  from: string;
  type: string | undefined;
  ids: string[];
  at: number;
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

  // messaging
  messageLog(filter?: MessageLogFilter): MessageLogEntry[];
  queued(jid: string): QueuedStanza[];
  /** the simulated phone of `phone` sends a text to `to` (number, PN or LID user jid); resolves once routed */
  sendFromPhone(
    phone: string,
    to: string,
    text: string,
    /** `fresh`: start new Signal sessions to the target devices, as a reinstalled phone does */
    opts?: { id?: string; fresh?: boolean },
  ): Promise<{ id: string; to: string; devices: string[] }>;
  phoneMessages(phone: string): PhoneMessage[];
  phoneFailures(phone: string): Array<{ id: string; from: string; error: string; at: number }>;
  phoneReceipts(phone: string): PhoneReceipt[];
  phoneAcks(phone: string): Array<{ id: string; error: string | undefined; at: number }>;
  /** `read` receipts from the phone for messages it received → how many */
  phoneRead(phone: string, ids: string[]): number;
  /** the next `count` (1) message stanzas from matching devices get `<ack error=code>` (463) and are not routed */
  failNextAck(jid?: string, opts?: { code?: number; count?: number }): void;
  /** the next message stanza from a matching device is read (copies stored unless deliver: false), then its socket dropped, no ack */
  dropBeforeAck(jid?: string, opts?: { deliver?: boolean }): void;
  /** the next copy for a matching device is pushed twice, or kept past its first receipt and replayed at the next login */
  duplicateNext(jid?: string, opts?: { mode?: 'twice' | 'after-reconnect' }): void;
  /** the next copy for a matching device gets a corrupted ciphertext (Bad MAC) */
  corruptNext(jid?: string): void;
  /** receipts from matching devices are held back until releaseReceipts */
  holdReceipts(jid?: string): void;
  /** drops the hold added with that jid (all when omitted), forwards what it held → count */
  releaseReceipts(jid?: string): number;
  /** phone-number addressed messages to this account get ack error 463 */
  setLidMigrated(number: string, on?: boolean): void;
  /** drops every messaging fault, LID migration and hold (held receipts are forwarded) → count forwarded */
  clearFaults(): number;
}

export declare function startTestServer(options?: TestServerOptions): Promise<TestServer>;
