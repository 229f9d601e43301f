// @ts-check
/**
 * Deterministic, loopback-only WhatsApp (multi-device) test server for the Baileys 7 client.
 *
 * - WebSocket on /ws/chat, intro `WA\x06\x03` or the `ED` edge-routing prefix form.
 * - Noise XX_25519_AESGCM_SHA256 as responder, with a real XEdDSA certificate chain under a
 *   seedable test root (put it into `WA_CERT_DETAILS.PUBLIC_KEY` on the client side, see
 *   trust-test-root.js).
 * - Registration (QR refs, simulated phone scan, pair-success / pair-device-sign, 515),
 *   pairing code (link_code_companion_reg), login, the iqs a client sends after login, and a set
 *   of fault injections.
 * - Messaging (routing.js, phone.js): pre-key bundles, key fetches, fan-out of Signal-encrypted
 *   messages, offline queues and replay, receipts, simulated phones and messaging faults.
 *
 * See README.md in this folder. Only ever listens on / talks to 127.0.0.1 (or the given host).
 */
import http from 'node:http';
import { EventEmitter } from 'node:events';
import { randomBytes, pbkdf2 } from 'node:crypto';
// @ts-expect-error -- @types/ws is not installed
import { WebSocketServer } from 'ws';
import {
  proto,
  encodeBinaryNode,
  decodeBinaryNode,
  getBinaryNodeChild,
  getBinaryNodeChildren,
  Curve,
  hkdf,
  hmacSign,
  sha256,
  aesEncryptGCM,
  aesDecryptGCM,
  aesEncryptCTR,
  aesDecryptCTR,
  NOISE_MODE,
  NOISE_WA_HEADER,
  WA_CERT_DETAILS,
  WA_ADV_ACCOUNT_SIG_PREFIX,
  WA_ADV_DEVICE_SIG_PREFIX,
} from '@whiskeysockets/baileys';
import { deriveKeyPair, deriveBytes, xeddsaSign, xeddsaVerify, corruptSignature } from './crypto.js';
import { Router } from './routing.js';

/** @typedef {import('@whiskeysockets/baileys').BinaryNode} BinaryNode */
/** @typedef {import('./crypto.js').KeyPair} KeyPair */

/**
 * @typedef {object} TestServerOptions
 * @property {string} [host] default '127.0.0.1'
 * @property {number} [port] default 0 (ephemeral)
 * @property {number} [refs] number of QR refs in `pair-device` (default 6)
 * @property {string} [seed] seed for every server-side key (default 'wa-test-server')
 * @property {string[]} [knownNumbers] numbers reported as registered WhatsApp users by usync
 * @property {number} [pairTimeoutMs] how long scanQr/enterPairingCode wait for pair-device-sign / companion_finish (default 15000)
 */

/**
 * @typedef {'valid'|'bad-signature'|'bad-intermediate-signature'|'wrong-serial'|'leaf-not-static'} CertMode
 */

/**
 * @typedef {object} ConnectionLogEntry
 * @property {number} id
 * @property {number} at            Date.now() of the TCP/upgrade attempt
 * @property {string} outcome       'refused' | 'http-error' | 'connecting' | 'handshake-failed' | 'registration' | 'bad-registration' | 'login' | 'rejected-401' | 'rejected-405'
 * @property {boolean} routed       the client sent the ED edge-routing prefix
 * @property {boolean} [routingInfoMatches] the ED routing info equals what this server sent
 * @property {string} [jid]         device jid for logins
 * @property {number} [closedAt]
 */

const S_WHATSAPP_NET = 's.whatsapp.net';
const VALID_CERT_MODES = ['valid', 'bad-signature', 'bad-intermediate-signature', 'wrong-serial', 'leaf-not-static'];
const INTRO_WA = Buffer.from(NOISE_WA_HEADER); // 'WA', 6, DICT_VERSION
const MAX_FRAME = 1 << 24;

const nowSeconds = () => Math.floor(Date.now() / 1000);

class NoiseResponder {
  constructor() {
    const mode = Buffer.from(NOISE_MODE);
    this.h = mode.length === 32 ? mode : sha256(mode);
    this.ck = this.h;
    /** @type {Buffer} */
    this.k = this.h;
    this.n = 0;
  }
  /** @param {Uint8Array} data */
  mixHash(data) {
    this.h = sha256(Buffer.concat([this.h, data]));
  }
  /** @param {Uint8Array} ikm */
  mixKey(ikm) {
    const out = Buffer.from(hkdf(Buffer.from(ikm), 64, { salt: this.ck, info: '' }));
    this.ck = out.subarray(0, 32);
    this.k = out.subarray(32);
    this.n = 0;
  }
  iv() {
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(this.n++, 8);
    return iv;
  }
  /** @param {Uint8Array} pt */
  encryptAndHash(pt) {
    const ct = aesEncryptGCM(pt, this.k, this.iv(), this.h);
    this.mixHash(ct);
    return ct;
  }
  /** @param {Uint8Array} ct */
  decryptAndHash(ct) {
    const pt = aesDecryptGCM(ct, this.k, this.iv(), this.h);
    this.mixHash(ct);
    return pt;
  }
  /** @returns {{ enc: Buffer, dec: Buffer }} keys from the responder's point of view */
  split() {
    const out = Buffer.from(hkdf(Buffer.alloc(0), 64, { salt: this.ck, info: '' }));
    // initiator writes with the first half, reads with the second
    return { dec: out.subarray(0, 32), enc: out.subarray(32) };
  }
}

/** @param {number} counter */
function counterIv(counter) {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(counter >>> 0, 8);
  return iv;
}

/**
 * @typedef {object} DeviceRecord
 * @property {string} jid
 * @property {string} lid
 * @property {string} phone
 * @property {string|undefined} name
 * @property {number} deviceId
 * @property {number} keyIndex
 * @property {Buffer} noiseKey
 * @property {Buffer} identityKey
 * @property {number} registrationId
 * @property {number} preKeyCount
 * @property {boolean} removed
 * @property {number} logins
 * @property {number} created
 * @property {string} platform
 * @property {Conn|null} conn
 */

/**
 * @typedef {object} PhoneRecord
 * @property {string} number
 * @property {string} lidUser
 * @property {string|undefined} name
 * @property {KeyPair} account        ADV account signature key
 * @property {KeyPair} identity       phone identity key (pairing-code flow)
 * @property {number} nextDeviceId
 * @property {number} nextKeyIndex
 * @property {boolean} registered     a paired phone or a configured known number
 */

class Conn {
  /**
   * @param {number} id
   * @param {import('node:events').EventEmitter & { binaryType: string, send(b: Buffer): void, close(): void }} ws
   * @param {import('node:net').Socket} socket
   * @param {ConnectionLogEntry} entry
   */
  constructor(id, ws, socket, entry) {
    this.id = id;
    this.ws = ws;
    this.socket = socket;
    this.entry = entry;
    /** @type {'intro'|'hello'|'finish'|'open'|'closed'} */
    this.state = 'intro';
    /** @type {Buffer} */
    this.inBuf = Buffer.alloc(0);
    this.noise = new NoiseResponder();
    /** @type {{ private: Uint8Array, public: Uint8Array }|null} */
    this.ephemeral = null;
    /** @type {Buffer|null} */
    this.encKey = null;
    /** @type {Buffer|null} */
    this.decKey = null;
    this.readCounter = 0;
    this.writeCounter = 0;
    /** @type {Buffer|null} client Noise static key (creds.noiseKey.public) */
    this.clientStatic = null;
    /** @type {'registration'|'login'|null} */
    this.kind = null;
    /** @type {{ identityKey: Buffer, registrationId: number, signedPreKeyId: number, signedPreKey: Buffer, signedPreKeySignature: Buffer } | null} */
    this.reg = null;
    /** @type {string[]} */
    this.refs = [];
    /** @type {DeviceRecord|null} */
    this.device = null;
    this.silenced = false;
    this.ended = false;
    this.pairing = false;
    /** the offline backlog went out (`offline_batch` answered): live copies may be pushed now */
    this.replayed = false;
    /** @type {Map<string, { resolve: (n: BinaryNode) => void, reject: (e: Error) => void }>} */
    this.waiters = new Map();
    /** @type {Promise<void>} */
    this.queue = Promise.resolve();
    /** @type {NodeJS.Timeout|null} */
    this.closeTimer = null;
  }
  get live() {
    return this.state !== 'closed';
  }
}

export class TestServer {
  /** @param {TestServerOptions} options */
  constructor(options = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 0;
    this.refsPerPairDevice = options.refs ?? 6;
    this.seed = options.seed ?? 'wa-test-server';
    this.pairTimeoutMs = options.pairTimeoutMs ?? 15000;
    const root = deriveKeyPair(this.seed, 'root');
    /** @type {Uint8Array} */
    this.rootPublicKey = new Uint8Array(root.public);
    this.rootPublicKeyBase64 = root.public.toString('base64');
    this.url = '';
    /** next scanQr/enterPairingCode sends an invalid ADV account signature (HMAC still valid) */
    this.forgeAccountSignature = false;

    this._root = root;
    this._intermediate = deriveKeyPair(this.seed, 'intermediate');
    this._static = deriveKeyPair(this.seed, 'noise-static');
    this._otherLeaf = deriveKeyPair(this.seed, 'other-leaf');
    this._routingInfo = Buffer.concat([Buffer.from([0x08, 0x08, 0x08, 0x02]), deriveBytes(this.seed, 'routing', 4)]);
    /** @type {CertMode} */
    this._certMode = 'valid';
    /** @type {Map<string, Buffer>} */
    this._certCache = new Map();

    this._events = new EventEmitter();
    this._events.setMaxListeners(0);
    /** @type {Set<NodeJS.Timeout>} */
    this._timers = new Set();
    /** @type {Set<import('node:net').Socket>} */
    this._sockets = new Set();
    /** @type {Set<Conn>} */
    this._conns = new Set();
    /** @type {ConnectionLogEntry[]} */
    this._log = [];
    /** @type {Map<string, DeviceRecord>} key: device jid */
    this._devices = new Map();
    /** @type {Map<string, PhoneRecord>} */
    this._phones = new Map();
    /** @type {Map<string, Conn>} QR ref -> registration connection */
    this._refs = new Map();
    /** @type {Map<string, { conn: Conn, number: string, wrapped: Buffer, ref: Buffer, finish: ((n: BinaryNode) => void) | null }>} */
    this._linkCodes = new Map();
    this._connSeq = 0;
    this._iqSeq = 0;
    this._phoneSeq = 0;
    this._defaultNumberSeq = 0;
    this._rejectVersion = false;
    /** @type {number|null} */
    this._httpErrorStatus = null;
    this._refuseReset = false;
    this._closed = false;
    /** @type {http.Server|null} */
    this._http = null;

    this._wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      clientTracking: false,
      maxPayload: MAX_FRAME + 16,
    });
    this._router = new Router(this);
    for (const n of options.knownNumbers ?? []) {
      this._phone(String(n).replace(/\D/g, ''), undefined).registered = true;
    }
  }

  // ---------------------------------------------------------------- public API

  /** @returns {CertMode} */
  get certMode() {
    return this._certMode;
  }
  /** @param {CertMode} mode */
  set certMode(mode) {
    if (!VALID_CERT_MODES.includes(mode)) throw new Error(`unknown certMode ${mode}`);
    this._certMode = mode;
  }

  /**
   * The simulated phone scans the QR string the client displayed.
   * @param {string} qr
   * @param {{ number?: string, name?: string }} [phone]
   * @returns {Promise<{ jid: string, lid: string }>}
   */
  async scanQr(qr, phone = {}) {
    const hash = qr.indexOf('#');
    const parts = (hash >= 0 ? qr.slice(hash + 1) : qr).split(',');
    if (parts.length < 4) throw new Error('scanQr: not a WhatsApp pairing QR string');
    const [ref = '', noiseB64 = '', identityB64 = '', advB64 = ''] = parts;
    const conn = this._refs.get(ref);
    if (!conn || !conn.live || conn.kind !== 'registration' || !conn.reg || !conn.clientStatic) {
      throw new Error('scanQr: unknown or expired QR ref (no live registration connection issued it)');
    }
    if (conn.pairing) throw new Error('scanQr: this connection is already pairing');
    if (Buffer.from(noiseB64, 'base64').compare(conn.clientStatic) !== 0) {
      throw new Error('scanQr: QR noise key does not match the connection');
    }
    if (Buffer.from(identityB64, 'base64').compare(conn.reg.identityKey) !== 0) {
      throw new Error('scanQr: QR identity key does not match the registration');
    }
    const advSecret = Buffer.from(advB64, 'base64');
    if (advSecret.length !== 32) throw new Error('scanQr: bad adv secret in QR');
    const number = phone.number ? String(phone.number).replace(/\D/g, '') : this._nextDefaultNumber();
    return this._completePairing(conn, number, phone.name, advSecret);
  }

  /**
   * The phone types the pairing code for the pending link-code request of that number
   * (or the only pending one).
   * @param {string} code 'ABCD-EFGH' or 'ABCDEFGH'
   * @param {string} [phoneNumber]
   * @returns {Promise<{ jid: string, lid: string }>}
   */
  async enterPairingCode(code, phoneNumber) {
    const normalized = String(code).replace(/[-\s]/g, '').toUpperCase();
    let entry;
    if (phoneNumber) {
      entry = this._linkCodes.get(String(phoneNumber).replace(/\D/g, ''));
    } else if (this._linkCodes.size === 1) {
      entry = [...this._linkCodes.values()][0];
    } else if (this._linkCodes.size > 1) {
      throw new Error('enterPairingCode: several link-code requests pending; pass the phone number');
    }
    if (!entry || !entry.conn.live) throw new Error('enterPairingCode: no pending pairing-code request');
    const { conn, number } = entry;
    if (conn.pairing) throw new Error('enterPairingCode: this connection is already pairing');
    conn.pairing = true;
    try {
      const phone = this._phone(number, undefined);
      // unwrap the companion's ephemeral key with the typed code (no integrity check)
      const w = entry.wrapped;
      const unwrapKey = await pbkdf2Key(normalized, w.subarray(0, 32));
      const companionEphemeral = aesDecryptCTR(w.subarray(48, 80), unwrapKey, w.subarray(32, 48));
      // the phone's ephemeral key, wrapped with the same code
      const primaryEphemeral = Curve.generateKeyPair();
      const salt = randomBytes(32);
      const iv = randomBytes(16);
      const wrapKey = await pbkdf2Key(normalized, salt);
      const wrappedPrimary = Buffer.concat([salt, iv, aesEncryptCTR(primaryEphemeral.public, wrapKey, iv)]);
      if (!conn.live) throw new Error('enterPairingCode: connection closed');
      const finishPromise = new Promise((resolve, reject) => {
        const timer = this._setTimer(() => {
          entry.finish = null;
          reject(new Error('enterPairingCode: no companion_finish from the client'));
        }, this.pairTimeoutMs);
        entry.finish = (/** @type {BinaryNode} */ node) => {
          this._clearTimer(timer);
          entry.finish = null;
          resolve(node);
        };
        conn.waiters.set(`link-code-finish-${conn.id}`, {
          resolve: () => {},
          reject: (err) => {
            this._clearTimer(timer);
            reject(err);
          },
        });
      });
      this._send(conn, {
        tag: 'notification',
        attrs: { from: S_WHATSAPP_NET, type: 'link_code_companion_reg', id: this._nextIqId(), t: String(nowSeconds()) },
        content: [
          {
            tag: 'link_code_companion_reg',
            attrs: {},
            content: [
              { tag: 'link_code_pairing_ref', attrs: {}, content: entry.ref },
              { tag: 'primary_identity_pub', attrs: {}, content: phone.identity.public },
              { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: wrappedPrimary },
            ],
          },
        ],
      });
      /** @type {BinaryNode} */
      const finish = /** @type {any} */ (await finishPromise);
      conn.waiters.delete(`link-code-finish-${conn.id}`);
      const reg = getBinaryNodeChild(finish, 'link_code_companion_reg');
      const bundle = toBuffer(getBinaryNodeChild(reg, 'link_code_pairing_wrapped_key_bundle')?.content);
      const companionIdentity = toBuffer(getBinaryNodeChild(reg, 'companion_identity_public')?.content);
      if (!bundle || bundle.length < 32 + 12 + 16 || !companionIdentity) {
        throw new Error('enterPairingCode: malformed companion_finish');
      }
      const companionShared = Curve.sharedKey(primaryEphemeral.private, companionEphemeral);
      const bundleKey = Buffer.from(
        hkdf(companionShared, 32, {
          salt: bundle.subarray(0, 32),
          info: 'link_code_pairing_key_bundle_encryption_key',
        }),
      );
      let plain;
      try {
        plain = aesDecryptGCM(bundle.subarray(44), bundleKey, bundle.subarray(32, 44), Buffer.alloc(0));
      } catch {
        throw new Error('enterPairingCode: wrong pairing code (key bundle failed to decrypt)');
      }
      if (plain.length !== 96) throw new Error('enterPairingCode: bad key bundle length');
      const bundleCompanionIdentity = plain.subarray(0, 32);
      const bundlePrimaryIdentity = plain.subarray(32, 64);
      const random = plain.subarray(64, 96);
      if (
        !conn.reg ||
        bundleCompanionIdentity.compare(conn.reg.identityKey) !== 0 ||
        bundleCompanionIdentity.compare(companionIdentity) !== 0
      ) {
        throw new Error('enterPairingCode: companion identity mismatch');
      }
      if (bundlePrimaryIdentity.compare(phone.identity.public) !== 0) {
        throw new Error('enterPairingCode: primary identity mismatch');
      }
      const identityShared = Curve.sharedKey(phone.identity.private, companionIdentity);
      const advSecret = Buffer.from(
        hkdf(Buffer.concat([companionShared, identityShared, random]), 32, { info: 'adv_secret' }),
      );
      this._linkCodes.delete(number);
      conn.pairing = false;
      return await this._completePairing(conn, number, undefined, advSecret);
    } finally {
      conn.pairing = false;
    }
  }

  /** @returns {Array<{ jid: string, lid: string, phone: string, name: string|undefined, removed: boolean, online: boolean, logins: number }>} */
  devices() {
    return [...this._devices.values()].map((d) => ({
      jid: d.jid,
      lid: d.lid,
      phone: d.phone,
      name: d.name,
      removed: d.removed,
      online: !!d.conn && d.conn.live && !d.conn.ended,
      logins: d.logins,
      preKeyCount: d.preKeyCount,
      preKeysAvailable: this._router.availablePreKeys(d),
    }));
  }

  // ---------------------------------------------------------------- messaging (routing.js, phone.js)

  /**
   * Stanzas the server received (`dir: 'in'`: message / receipt / ack, with the sending device) and
   * the copies it delivered (`dir: 'out'`), oldest first. Filter by device jid spec (see README) and tag.
   * @param {{ device?: string, tag?: 'message'|'receipt'|'ack', dir?: 'in'|'out', id?: string }} [filter]
   */
  messageLog(filter = {}) {
    return this._router.log
      .filter((e) => {
        if (filter.tag && e.tag !== filter.tag) return false;
        if (filter.dir && e.dir !== filter.dir) return false;
        if (filter.id && e.id !== filter.id) return false;
        if (filter.device) {
          const r = this._router.resolve(e.device);
          if (!r || !this._router.matches(r.ep, filter.device)) return false;
        }
        return true;
      })
      .map((e) => ({ ...e, ...(e.targets ? { targets: [...e.targets] } : {}) }));
  }

  /** what waits in a device's queue (messages until its receipt, receipts until its ack). @param {string} jid */
  queued(jid) {
    return this._router.queued(jid);
  }

  /** @param {string} number */
  _sim(number) {
    const acc = this._router.resolveAccount(String(number));
    if (!acc) throw new Error(`${number} is not a registered account (pair it or pass it in knownNumbers)`);
    return /** @type {import('./phone.js').SimPhone} */ (this._router.phoneEndpoint(acc.phone).sim);
  }

  /**
   * The simulated phone of `phone` (a number or its jid) sends a text to `to` (a number, PN or LID
   * user jid): Signal-encrypted to every device of that account, DSM copies to its own companions.
   * Resolves once the copies are stored (the phone got its server ack).
   * @param {string} phone @param {string} to @param {string} text @param {{ id?: string, fresh?: boolean }} [opts]
   */
  sendFromPhone(phone, to, text, opts) {
    return this._sim(phone).send(to, text, opts);
  }

  /** what the simulated phone decrypted, oldest first. @param {string} phone */
  phoneMessages(phone) {
    return this._sim(phone).received.map((m) => ({ ...m }));
  }

  /** copies the simulated phone could not decrypt (it answered each with a retry receipt). @param {string} phone */
  phoneFailures(phone) {
    return this._sim(phone).failures.map((m) => ({ ...m }));
  }

  /** receipts that reached the simulated phone for messages it sent. @param {string} phone */
  phoneReceipts(phone) {
    return this._sim(phone).receipts.map((m) => ({ ...m, ids: [...m.ids] }));
  }

  /** acks the simulated phone got for messages it sent. @param {string} phone */
  phoneAcks(phone) {
    return this._sim(phone).acks.map((m) => ({ ...m }));
  }

  /** the simulated phone reads messages it received (`read` receipts). @param {string} phone @param {string[]} ids */
  phoneRead(phone, ids) {
    return this._sim(phone).read(ids);
  }

  /**
   * The next `count` message stanzas from matching devices are answered with `<ack error=code>`
   * and not routed (463: account restricted / missing tctoken, 479: smax-invalid).
   * @param {string} [jid] @param {{ code?: number, count?: number }} [opts]
   */
  failNextAck(jid, opts = {}) {
    this._router.addFault({ kind: 'ack-error', jid, code: opts.code ?? 463, remaining: opts.count ?? 1 });
  }

  /**
   * The next message stanza from a matching device is read (and, unless deliver is false, its copies
   * stored and delivered), then the sender's socket is destroyed instead of acking it.
   * @param {string} [jid] @param {{ deliver?: boolean }} [opts]
   */
  dropBeforeAck(jid, opts = {}) {
    this._router.addFault({ kind: 'drop-before-ack', jid, deliver: opts.deliver !== false });
  }

  /**
   * The next copy stored for a matching device is delivered twice in a row (mode 'twice'), or
   * survives its first receipt and is delivered again at the device's next login ('after-reconnect').
   * @param {string} [jid] @param {{ mode?: 'twice'|'after-reconnect' }} [opts]
   */
  duplicateNext(jid, opts = {}) {
    this._router.addFault({ kind: 'duplicate', jid, mode: opts.mode ?? 'twice' });
  }

  /** the next copy stored for a matching device gets a corrupted ciphertext (Bad MAC → retry receipt). @param {string} [jid] */
  corruptNext(jid) {
    this._router.addFault({ kind: 'corrupt', jid });
  }

  /** receipts from matching devices are held back (not forwarded) until releaseReceipts. @param {string} [jid] */
  holdReceipts(jid) {
    this._router.holds.push(jid);
  }

  /** stop holding (the hold added with that same jid; all holds when omitted) and forward what was held → count forwarded. @param {string} [jid] */
  releaseReceipts(jid) {
    return this._router.releaseReceipts(jid);
  }

  /** the account has moved to LID: phone-number addressed messages to it get ack error 463. @param {string} number @param {boolean} [on] */
  setLidMigrated(number, on = true) {
    const n = String(number).replace(/\D/g, '');
    if (on) this._router.lidMigrated.add(n);
    else this._router.lidMigrated.delete(n);
  }

  /** drop every pending messaging fault, LID migration and receipt hold (held receipts are forwarded) → count forwarded */
  clearFaults() {
    return this._router.clearFaults();
  }

  /** total WebSocket upgrade attempts (and TCP attempts refused in 'reset' mode) so far */
  connections() {
    return this._log.length;
  }

  /** @returns {ConnectionLogEntry[]} */
  connectionLog() {
    return this._log.map((e) => ({ ...e }));
  }

  /** phone numbers with a pending pairing-code (link_code_companion_reg companion_hello) request */
  pendingPairingCodes() {
    return [...this._linkCodes.values()].filter((e) => e.conn.live).map((e) => e.number);
  }

  /** number of currently open client sockets */
  openConnections() {
    return [...this._conns].filter((c) => c.live).length;
  }

  /**
   * Resolves once predicate() is true; re-checked on every server state change and every 20 ms.
   * @param {() => boolean} predicate
   * @param {number} [timeoutMs] default 10000
   */
  waitFor(predicate, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        let ok = false;
        try {
          ok = !!predicate();
        } catch (err) {
          finish();
          reject(err);
          return;
        }
        if (ok) {
          finish();
          resolve(undefined);
        }
      };
      const poll = setInterval(check, 20);
      const timeout = setTimeout(() => {
        if (done) return;
        finish();
        reject(new Error(`waitFor timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        done = true;
        clearInterval(poll);
        clearTimeout(timeout);
        this._events.off('change', check);
      };
      this._events.on('change', check);
      check();
    });
  }

  /** close the TCP socket(s) abruptly → client reports 428. @param {string} [jid] */
  drop(jid) {
    const conns = this._select(jid);
    for (const c of conns) c.socket.destroy();
    return conns.length;
  }

  /**
   * Stop sending any frame (and optionally stop reading) → keep-alive 408.
   * @param {string} [jid]
   * @param {{ stopReading?: boolean }} [opts]
   */
  silence(jid, opts = {}) {
    const conns = this._select(jid);
    for (const c of conns) {
      c.silenced = true;
      if (opts.stopReading) c.socket.pause();
    }
    return conns.length;
  }

  /** `<stream:error><conflict type="replaced"/></stream:error>` → 440. @param {string} jid */
  conflict(jid) {
    const conns = this._select(jid, true);
    for (const c of conns) {
      this._endStream(c, {
        tag: 'stream:error',
        attrs: {},
        content: [{ tag: 'conflict', attrs: { type: 'replaced' } }],
      });
    }
    return conns.length;
  }

  /** device removed on the phone → 401; later logins get `<failure reason="401"/>`. @param {string} jid */
  removeDevice(jid) {
    const devs = this._matchDevices(jid);
    for (const d of devs) {
      d.removed = true;
      const c = d.conn;
      if (c && c.live) {
        this._endStream(c, {
          tag: 'stream:error',
          attrs: { code: '401' },
          content: [{ tag: 'conflict', attrs: { type: 'device_removed' } }],
        });
      }
    }
    this._notify();
    return devs.length;
  }

  /** logins answered `<failure reason="405"/>` while on. @param {boolean} on */
  rejectVersion(on) {
    this._rejectVersion = !!on;
  }

  /**
   * Refuse new connections for `ms`.
   * mode 'reset' (default): keep listening but reset every new TCP connection at once (counted, outcome 'refused');
   * mode 'close': close the listening socket (true ECONNREFUSED, attempts cannot be counted).
   * Either way the client reports 408 per attempt.
   * @param {number} ms
   * @param {{ mode?: 'reset'|'close' }} [opts]
   */
  async refuseConnections(ms, opts = {}) {
    const mode = opts.mode ?? 'reset';
    if (mode === 'close') {
      await this._stopListening();
      this._setTimer(() => {
        if (!this._closed) this._startListening().catch(() => {});
      }, ms);
    } else {
      this._refuseReset = true;
      this._setTimer(() => {
        this._refuseReset = false;
      }, ms);
    }
  }

  /** answer the upgrade with plain HTTP `status` instead of 101 (null to stop). @param {number|null} status */
  httpErrorOnUpgrade(status) {
    this._httpErrorStatus = status == null ? null : Number(status);
  }

  /**
   * Close all client sockets and the listener, stay down downMs, listen again on the same port.
   * The device registry is kept.
   * @param {number} [downMs]
   */
  async restart(downMs = 0) {
    await this._stopListening();
    this._killAll();
    if (downMs > 0) await new Promise((r) => this._setTimer(() => r(undefined), downMs));
    if (!this._closed) await this._startListening();
  }

  /** close everything; no timers left running */
  async close() {
    if (this._closed) return;
    this._closed = true;
    await this._stopListening();
    this._killAll();
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    await new Promise((r) => this._wss.close(() => r(undefined)));
    this._events.removeAllListeners();
  }

  // ---------------------------------------------------------------- listener

  async _startListening() {
    const server = http.createServer((req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
      res.end('WebSocket upgrade required\n');
    });
    server.on('connection', (socket) => {
      if (this._refuseReset) {
        this._log.push({ id: ++this._connSeq, at: Date.now(), outcome: 'refused', routed: false });
        this._notify();
        socket.resetAndDestroy();
        return;
      }
      this._sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => this._sockets.delete(socket));
      socket.on('error', () => {});
    });
    server.on('upgrade', (req, socket, head) =>
      this._onUpgrade(req, /** @type {import('node:net').Socket} */ (socket), head),
    );
    server.on('clientError', (_err, socket) => socket.destroy());
    // re-listening on the same port right after closing it can briefly hit EADDRINUSE: retry
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: this.host, port: this.port }, () => {
            server.off('error', reject);
            resolve(undefined);
          });
        });
        break;
      } catch (err) {
        if (/** @type {any} */ (err).code !== 'EADDRINUSE' || this.port === 0 || attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
    this.port = addr.port;
    this.url = `ws://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}/ws/chat`;
    this._http = server;
  }

  async _stopListening() {
    const server = this._http;
    this._http = null;
    if (!server) return;
    // stop accepting; upgraded sockets are tracked and closed separately
    await new Promise((resolve) => {
      server.close(() => resolve(undefined));
      // do not wait for upgraded sockets (they keep the close callback pending)
      setImmediate(resolve);
    });
  }

  _killAll() {
    for (const c of this._conns) c.socket.destroy();
    for (const s of this._sockets) s.destroy();
  }

  /**
   * @param {http.IncomingMessage} req
   * @param {import('node:net').Socket} socket
   * @param {Buffer} head
   */
  _onUpgrade(req, socket, head) {
    const entry = /** @type {ConnectionLogEntry} */ ({
      id: ++this._connSeq,
      at: Date.now(),
      outcome: 'connecting',
      routed: false,
    });
    this._log.push(entry);
    this._notify();
    const path = (req.url ?? '').split('?')[0];
    if (this._httpErrorStatus != null || path !== '/ws/chat') {
      const status = path !== '/ws/chat' ? 404 : (this._httpErrorStatus ?? 503);
      entry.outcome = 'http-error';
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      entry.closedAt = Date.now();
      return;
    }
    this._wss.handleUpgrade(
      req,
      socket,
      head,
      (
        /** @type {import('node:events').EventEmitter & { binaryType: string, send(b: Buffer): void, close(): void }} */ ws,
      ) => {
        const conn = new Conn(entry.id, ws, socket, entry);
        this._conns.add(conn);
        ws.binaryType = 'nodebuffer';
        ws.on('message', (/** @type {Buffer} */ data, /** @type {boolean} */ isBinary) => {
          if (!isBinary) return this._abort(conn, 'handshake-failed');
          this._onData(conn, /** @type {Buffer} */ (data));
        });
        ws.on('close', () => this._onClose(conn));
        ws.on('error', () => {});
        this._notify();
      },
    );
  }

  // ---------------------------------------------------------------- framing & noise

  /** @param {Conn} conn @param {Buffer} data */
  _onData(conn, data) {
    if (!conn.live || conn.ended) return;
    conn.inBuf = conn.inBuf.length ? Buffer.concat([conn.inBuf, data]) : data;
    try {
      if (conn.state === 'intro' && !this._parseIntro(conn)) return;
      while (conn.live && conn.inBuf.length >= 3) {
        const size = conn.inBuf.readUIntBE(0, 3);
        if (conn.inBuf.length < size + 3) return;
        const frame = conn.inBuf.subarray(3, size + 3);
        conn.inBuf = conn.inBuf.subarray(size + 3);
        if (conn.state === 'hello') this._onClientHello(conn, frame);
        else if (conn.state === 'finish') this._onClientFinish(conn, frame);
        else if (conn.state === 'open') {
          const plain = aesDecryptGCM(
            frame,
            /** @type {Buffer} */ (conn.decKey),
            counterIv(conn.readCounter++),
            Buffer.alloc(0),
          );
          conn.queue = conn.queue
            .then(async () => {
              if (!conn.live || conn.ended) return;
              const node = await decodeBinaryNode(plain);
              await this._onNode(conn, node);
            })
            .catch(() => this._abort(conn));
        }
      }
    } catch {
      this._abort(conn, conn.state === 'open' ? undefined : 'handshake-failed');
    }
  }

  /** @param {Conn} conn @returns {boolean} */
  _parseIntro(conn) {
    const b = conn.inBuf;
    if (b.length < 4) return false;
    let offset = 0;
    if (b[0] === 0x45 && b[1] === 0x44) {
      // 'ED' 0 1 len(3) routingInfo 'WA' 6 3
      if (b.length < 7) return false;
      const len = b.readUIntBE(4, 3);
      if (b.length < 7 + len + 4) return false;
      const routing = b.subarray(7, 7 + len);
      conn.entry.routed = true;
      conn.entry.routingInfoMatches = routing.equals(this._routingInfo);
      offset = 7 + len;
    }
    if (b.subarray(offset, offset + 4).compare(INTRO_WA) !== 0) throw new Error('bad intro');
    conn.inBuf = b.subarray(offset + 4);
    conn.noise.mixHash(INTRO_WA);
    conn.state = 'hello';
    return true;
  }

  /** @param {Conn} conn @param {Buffer} frame */
  _onClientHello(conn, frame) {
    const hello = proto.HandshakeMessage.decode(frame).clientHello;
    const ce = toBuffer(hello?.ephemeral);
    if (!ce || ce.length !== 32) throw new Error('bad client hello');
    const n = conn.noise;
    n.mixHash(ce);
    const se = Curve.generateKeyPair();
    conn.ephemeral = se;
    n.mixHash(se.public);
    n.mixKey(Curve.sharedKey(se.private, ce));
    const encStatic = n.encryptAndHash(this._static.public);
    n.mixKey(Curve.sharedKey(this._static.private, ce));
    const encPayload = n.encryptAndHash(this._certChain(this._certMode));
    conn.state = 'finish';
    this._sendRaw(
      conn,
      proto.HandshakeMessage.encode({
        serverHello: { ephemeral: se.public, static: encStatic, payload: encPayload },
      }).finish(),
    );
  }

  /** @param {Conn} conn @param {Buffer} frame */
  _onClientFinish(conn, frame) {
    const fin = proto.HandshakeMessage.decode(frame).clientFinish;
    const encStatic = toBuffer(fin?.static);
    const encPayload = toBuffer(fin?.payload);
    if (!encStatic || !encPayload) throw new Error('bad client finish');
    const n = conn.noise;
    const clientStatic = n.decryptAndHash(encStatic);
    n.mixKey(Curve.sharedKey(/** @type {{ private: Uint8Array }} */ (conn.ephemeral).private, clientStatic));
    const payloadBytes = n.decryptAndHash(encPayload);
    const { enc, dec } = n.split();
    conn.encKey = enc;
    conn.decKey = dec;
    conn.clientStatic = Buffer.from(clientStatic);
    conn.state = 'open';
    const payload = proto.ClientPayload.decode(payloadBytes);
    if (payload.username !== null && payload.username !== undefined && String(payload.username) !== '0') {
      this._onLogin(conn, payload);
    } else {
      this._onRegistration(conn, payload);
    }
  }

  /** @param {Conn} conn @param {Uint8Array} bytes */
  _sendRaw(conn, bytes) {
    if (!conn.live || conn.silenced) return;
    const frame = Buffer.alloc(3 + bytes.length);
    frame[0] = (bytes.length >>> 16) & 0xff;
    frame[1] = (bytes.length >>> 8) & 0xff;
    frame[2] = bytes.length & 0xff;
    frame.set(bytes, 3);
    conn.ws.send(frame);
  }

  /** @param {Conn} conn @param {BinaryNode} node */
  _send(conn, node) {
    if (!conn.live || conn.silenced || conn.state !== 'open' || conn.ended) return false;
    const plain = encodeBinaryNode(node);
    const ct = aesEncryptGCM(
      plain,
      /** @type {Buffer} */ (conn.encKey),
      counterIv(conn.writeCounter++),
      Buffer.alloc(0),
    );
    this._sendRaw(conn, ct);
    return true;
  }

  /**
   * Send a final node (stream:error / failure); ignore the client from then on and close
   * our side after a grace period if the client does not close first.
   * @param {Conn} conn @param {BinaryNode} node
   */
  _endStream(conn, node) {
    if (!conn.live || conn.ended) return;
    this._send(conn, node);
    conn.ended = true;
    if (conn.device && conn.device.conn === conn) conn.device.conn = null;
    conn.closeTimer = this._setTimer(() => {
      conn.closeTimer = null;
      if (conn.live) conn.ws.close();
    }, 2000);
    this._notify();
  }

  /** @param {Conn} conn @param {string} [outcome] */
  _abort(conn, outcome) {
    if (outcome && conn.entry.outcome === 'connecting') conn.entry.outcome = outcome;
    conn.socket.destroy();
  }

  /** @param {Conn} conn */
  _onClose(conn) {
    if (conn.state === 'closed') return;
    conn.state = 'closed';
    conn.entry.closedAt = Date.now();
    this._conns.delete(conn);
    if (conn.closeTimer) this._clearTimer(conn.closeTimer);
    for (const ref of conn.refs) this._refs.delete(ref);
    for (const [num, e] of this._linkCodes) if (e.conn === conn) this._linkCodes.delete(num);
    if (conn.device && conn.device.conn === conn) conn.device.conn = null;
    const err = new Error('connection closed');
    for (const w of conn.waiters.values()) w.reject(err);
    conn.waiters.clear();
    this._notify();
  }

  /** @param {CertMode} mode */
  _certChain(mode) {
    const cached = this._certCache.get(mode);
    if (cached) return cached;
    const Details = proto.CertChain.NoiseCertificate.Details;
    const notBefore = 1700000000;
    const notAfter = 4102444800; // 2100-01-01
    const interDetails = Details.encode({
      serial: 1,
      issuerSerial: mode === 'wrong-serial' ? WA_CERT_DETAILS.SERIAL + 1 : WA_CERT_DETAILS.SERIAL,
      key: this._intermediate.public,
      notBefore,
      notAfter,
    }).finish();
    let interSig = xeddsaSign(this._root.private, interDetails);
    const leafDetails = Details.encode({
      serial: 2,
      issuerSerial: 1,
      key: mode === 'leaf-not-static' ? this._otherLeaf.public : this._static.public,
      notBefore,
      notAfter,
    }).finish();
    let leafSig = xeddsaSign(this._intermediate.private, leafDetails);
    if (mode === 'bad-signature') leafSig = corruptSignature(leafSig);
    if (mode === 'bad-intermediate-signature') interSig = corruptSignature(interSig);
    const bytes = Buffer.from(
      proto.CertChain.encode({
        leaf: { details: leafDetails, signature: leafSig },
        intermediate: { details: interDetails, signature: interSig },
      }).finish(),
    );
    this._certCache.set(mode, bytes);
    return bytes;
  }

  // ---------------------------------------------------------------- registration / login

  /** @param {Conn} conn @param {proto.ClientPayload} payload */
  _onRegistration(conn, payload) {
    conn.kind = 'registration';
    const d = payload.devicePairingData;
    const identityKey = toBuffer(d?.eIdent);
    const skeyVal = toBuffer(d?.eSkeyVal);
    const skeySig = toBuffer(d?.eSkeySig);
    if (
      !d ||
      !identityKey ||
      identityKey.length !== 32 ||
      !skeyVal ||
      !skeySig ||
      !xeddsaVerify(identityKey, Buffer.concat([Buffer.from([5]), skeyVal]), skeySig)
    ) {
      conn.entry.outcome = 'bad-registration';
      this._endStream(conn, { tag: 'failure', attrs: { reason: '400', location: 'test' } });
      return;
    }
    conn.entry.outcome = 'registration';
    conn.reg = {
      identityKey,
      registrationId: toBuffer(d.eRegid)?.readUInt32BE(0) ?? 0,
      signedPreKeyId: toBuffer(d.eSkeyId)?.readUIntBE(0, 3) ?? 0,
      signedPreKey: skeyVal,
      signedPreKeySignature: skeySig,
    };
    const refs = [];
    for (let i = 0; i < this.refsPerPairDevice; i++) {
      const ref = `2@${deriveBytes(this.seed, `ref|${conn.id}|${i}`, 30).toString('base64')}`;
      refs.push(ref);
      this._refs.set(ref, conn);
    }
    conn.refs = refs;
    this._send(conn, {
      tag: 'iq',
      attrs: { from: S_WHATSAPP_NET, type: 'set', id: this._nextIqId(), xmlns: 'md' },
      content: [
        {
          tag: 'pair-device',
          attrs: {},
          content: refs.map((ref) => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref, 'utf-8') })),
        },
      ],
    });
    this._notify();
  }

  /** @param {Conn} conn @param {proto.ClientPayload} payload */
  _onLogin(conn, payload) {
    conn.kind = 'login';
    const user = String(payload.username);
    const deviceId = Number(payload.device ?? 0);
    const jid = deviceId ? `${user}:${deviceId}@${S_WHATSAPP_NET}` : `${user}@${S_WHATSAPP_NET}`;
    conn.entry.jid = jid;
    if (this._rejectVersion) {
      conn.entry.outcome = 'rejected-405';
      this._endStream(conn, { tag: 'failure', attrs: { reason: '405', location: 'test' } });
      return;
    }
    const device = this._devices.get(jid);
    if (!device || device.removed || !conn.clientStatic || device.noiseKey.compare(conn.clientStatic) !== 0) {
      conn.entry.outcome = 'rejected-401';
      this._endStream(conn, { tag: 'failure', attrs: { reason: '401', location: 'test' } });
      return;
    }
    // another live login of the same device: the old connection is replaced
    const old = device.conn;
    if (old && old !== conn && old.live) {
      this._endStream(old, {
        tag: 'stream:error',
        attrs: {},
        content: [{ tag: 'conflict', attrs: { type: 'replaced' } }],
      });
    }
    conn.entry.outcome = 'login';
    conn.device = device;
    device.conn = conn;
    device.logins++;
    const preview = this._router.preview(this._router.deviceEndpoint(device));
    const t = String(nowSeconds());
    this._send(conn, {
      tag: 'success',
      attrs: {
        t,
        props: '1',
        abprops: '1',
        location: 'test',
        creation: String(device.created),
        lid: device.lid,
      },
    });
    this._send(conn, {
      tag: 'ib',
      attrs: { from: S_WHATSAPP_NET },
      content: [
        { tag: 'edge_routing', attrs: {}, content: [{ tag: 'routing_info', attrs: {}, content: this._routingInfo }] },
      ],
    });
    this._send(conn, {
      tag: 'ib',
      attrs: { from: S_WHATSAPP_NET },
      content: [
        {
          tag: 'offline_preview',
          attrs: {
            count: String(preview.count),
            message: String(preview.message),
            notification: '0',
            receipt: String(preview.receipt),
            appdata: '0',
            call: '0',
          },
        },
      ],
    });
    this._notify();
  }

  /**
   * pair-success → pair-device-sign → register → 515
   * @param {Conn} conn
   * @param {string} number
   * @param {string|undefined} name
   * @param {Buffer} advSecret
   * @returns {Promise<{ jid: string, lid: string }>}
   */
  async _completePairing(conn, number, name, advSecret) {
    if (!conn.reg || !conn.clientStatic) throw new Error('not a registration connection');
    conn.pairing = true;
    try {
      const phone = this._phone(number, name);
      phone.registered = true;
      const deviceId = phone.nextDeviceId;
      const keyIndex = phone.nextKeyIndex;
      const jid = `${number}:${deviceId}@${S_WHATSAPP_NET}`;
      const lid = `${phone.lidUser}:${deviceId}@lid`;
      const identityKey = conn.reg.identityKey;
      const created = nowSeconds();
      const details = Buffer.from(
        proto.ADVDeviceIdentity.encode({
          rawId: 100000 + this._phoneIndex(number),
          timestamp: created,
          keyIndex,
        }).finish(),
      );
      let accountSignature = xeddsaSign(
        phone.account.private,
        Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, details, identityKey]),
      );
      if (this.forgeAccountSignature) {
        this.forgeAccountSignature = false;
        accountSignature = corruptSignature(accountSignature);
      }
      const signed = Buffer.from(
        proto.ADVSignedDeviceIdentity.encode({
          details,
          accountSignatureKey: phone.account.public,
          accountSignature,
        }).finish(),
      );
      const container = proto.ADVSignedDeviceIdentityHMAC.encode({
        details: signed,
        hmac: hmacSign(signed, advSecret),
      }).finish();
      const id = this._nextIqId();
      const replyPromise = this._waitIq(conn, id);
      /** @type {BinaryNode[]} */
      const content = [
        { tag: 'device-identity', attrs: { 'key-index': String(keyIndex) }, content: container },
        { tag: 'platform', attrs: { name: 'android' } },
        { tag: 'device', attrs: { jid, lid } },
      ];
      if (name) content.push({ tag: 'biz', attrs: { name } });
      if (
        !this._send(conn, {
          tag: 'iq',
          attrs: { from: S_WHATSAPP_NET, type: 'set', id, xmlns: 'md', t: String(created) },
          content: [{ tag: 'pair-success', attrs: {}, content }],
        })
      ) {
        throw new Error('pairing: connection not usable');
      }
      const reply = await replyPromise;
      if (reply.attrs.type !== 'result')
        throw new Error(`pairing: client answered pair-success with type=${reply.attrs.type}`);
      const sign = getBinaryNodeChild(reply, 'pair-device-sign');
      const identityNode = getBinaryNodeChild(sign, 'device-identity');
      const signedBack = toBuffer(identityNode?.content);
      if (!signedBack) throw new Error('pairing: no device-identity in pair-device-sign');
      const account = proto.ADVSignedDeviceIdentity.decode(signedBack);
      const backDetails = toBuffer(account.details);
      if (!backDetails || backDetails.compare(details) !== 0)
        throw new Error('pairing: device identity details changed');
      const deviceSignature = toBuffer(account.deviceSignature);
      const deviceMsg = Buffer.concat([WA_ADV_DEVICE_SIG_PREFIX, details, identityKey, phone.account.public]);
      if (!deviceSignature || !xeddsaVerify(identityKey, deviceMsg, deviceSignature)) {
        this._endStream(conn, { tag: 'stream:error', attrs: { code: '401' } });
        throw new Error('pairing: invalid device signature in pair-device-sign');
      }
      phone.nextDeviceId++;
      phone.nextKeyIndex++;
      /** @type {DeviceRecord} */
      const device = {
        jid,
        lid,
        phone: number,
        name: name ?? phone.name,
        deviceId,
        keyIndex,
        noiseKey: conn.clientStatic,
        identityKey,
        registrationId: conn.reg.registrationId,
        preKeyCount: 0,
        removed: false,
        logins: 0,
        created,
        platform: 'android',
        conn: null,
      };
      this._devices.set(jid, device);
      this._router.onPaired(device, conn.reg);
      for (const ref of conn.refs) this._refs.delete(ref);
      this._endStream(conn, { tag: 'stream:error', attrs: { code: '515' } });
      return { jid, lid };
    } finally {
      conn.pairing = false;
    }
  }

  // ---------------------------------------------------------------- stanzas

  /** @param {Conn} conn @param {BinaryNode} node */
  async _onNode(conn, node) {
    switch (node.tag) {
      case 'iq': {
        const type = node.attrs.type;
        if (type === 'result' || type === 'error') {
          const w = conn.waiters.get(node.attrs.id ?? '');
          if (w) {
            conn.waiters.delete(node.attrs.id ?? '');
            w.resolve(node);
          }
          return;
        }
        this._onIq(conn, node);
        return;
      }
      case 'ib': {
        if (getBinaryNodeChild(node, 'offline_batch')) {
          if (conn.device) this._router.replay(conn, this._router.deviceEndpoint(conn.device));
          else {
            conn.replayed = true;
            this._send(conn, {
              tag: 'ib',
              attrs: { from: S_WHATSAPP_NET },
              content: [{ tag: 'offline', attrs: { count: '0' } }],
            });
          }
        }
        return;
      }
      case 'message':
        if (conn.device) {
          this._router.onMessage(this._router.deviceEndpoint(conn.device), node, conn);
          return;
        }
      // falls through: not logged in, just acked
      case 'receipt':
      case 'notification':
      case 'call': {
        /** @type {Record<string, string>} */
        const attrs = { id: node.attrs.id ?? '', class: node.tag, t: String(nowSeconds()) };
        if (node.attrs.to) attrs.from = node.attrs.to;
        if (node.attrs.type && node.tag !== 'message') attrs.type = node.attrs.type;
        if (node.attrs.participant) attrs.participant = node.attrs.participant;
        this._send(conn, { tag: 'ack', attrs });
        if (node.tag === 'receipt' && conn.device)
          this._router.onReceipt(this._router.deviceEndpoint(conn.device), node);
        return;
      }
      case 'ack':
        if (conn.device) this._router.onClientAck(this._router.deviceEndpoint(conn.device), node);
        return;
      default:
        return; // presence, chatstate, ...
    }
  }

  /** @param {Conn} conn @param {BinaryNode} node */
  _onIq(conn, node) {
    const { xmlns, type } = node.attrs;
    const id = node.attrs.id ?? '';
    const child = Array.isArray(node.content) ? node.content[0] : undefined;
    const childTag = child?.tag;
    /** @param {BinaryNode[]|undefined} [content] @param {Record<string,string>} [extra] */
    const result = (content, extra = {}) =>
      this._send(conn, {
        tag: 'iq',
        attrs: { from: S_WHATSAPP_NET, type: 'result', id, ...extra },
        ...(content ? { content } : {}),
      });
    /** @param {number} code @param {string} text */
    const error = (code, text) =>
      this._send(conn, {
        tag: 'iq',
        attrs: { from: S_WHATSAPP_NET, type: 'error', id },
        content: [{ tag: 'error', attrs: { code: String(code), text } }],
      });
    const device = conn.device;

    switch (xmlns) {
      case 'encrypt': {
        // count: one-time keys the server still holds (Baileys uploads more below its minimum)
        if (childTag === 'count')
          return result([
            { tag: 'count', attrs: { value: String(device ? this._router.availablePreKeys(device) : 0) } },
          ]);
        if (type === 'set' && getBinaryNodeChild(node, 'list')) {
          const keys = device
            ? this._router.upload(device, node)
            : getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'key').length;
          if (device) device.preKeyCount += keys;
          this._notify();
          return result();
        }
        if (type === 'set' && childTag === 'rotate') {
          if (device) this._router.rotate(device, node);
          return result();
        }
        if (childTag === 'digest') return result([{ tag: 'digest', attrs: {} }]);
        if (childTag === 'key') return result([this._router.keyFetch(node)]);
        return result();
      }
      case 'w:p':
        return result(undefined, { t: String(nowSeconds()) });
      case 'abt':
        return result([{ tag: 'props', attrs: { protocol: '1', hash: 'wa-test-server-props-1' }, content: [] }]);
      case 'privacy':
        if (type === 'get') {
          const cats = ['last', 'online', 'profile', 'status', 'groupadd', 'readreceipts', 'calladd', 'messages'];
          return result([
            {
              tag: 'privacy',
              attrs: {},
              content: cats.map((name) => ({ tag: 'category', attrs: { name, value: 'all' } })),
            },
          ]);
        }
        return result();
      case 'blocklist':
        if (type === 'get') return result([{ tag: 'list', attrs: {} }]);
        return result();
      case 'usync':
        return result([this._usync(node)]);
      case 'w:sync:app:state': {
        const sync = getBinaryNodeChild(node, 'sync');
        const collections = getBinaryNodeChildren(sync, 'collection').map((c) => ({
          tag: 'collection',
          attrs: { name: c.attrs.name ?? '', version: c.attrs.version ?? '0' },
        }));
        return result([{ tag: 'sync', attrs: {}, content: collections }]);
      }
      case 'w:profile:picture':
        if (type === 'get') return error(404, 'item-not-found');
        return result();
      case 'md': {
        if (childTag === 'remove-companion-device') {
          const target = child?.attrs.jid;
          const dev = (target && this._devices.get(target)) || device;
          if (dev) {
            dev.removed = true;
            if (dev.conn === conn) dev.conn = null;
          }
          this._notify();
          return result();
        }
        if (childTag === 'link_code_companion_reg')
          return this._onLinkCodeIq(conn, node, /** @type {BinaryNode} */ (child), result, error);
        return result();
      }
      default:
        return result();
    }
  }

  /**
   * @param {Conn} conn @param {BinaryNode} node @param {BinaryNode} reg
   * @param {(c?: BinaryNode[]) => boolean} result @param {(code: number, text: string) => boolean} error
   */
  _onLinkCodeIq(conn, node, reg, result, error) {
    const stage = reg.attrs.stage;
    if (stage === 'companion_hello') {
      const jid = reg.attrs.jid ?? '';
      const user = jid.split('@')[0] ?? '';
      const wrapped = toBuffer(getBinaryNodeChild(reg, 'link_code_pairing_wrapped_companion_ephemeral_pub')?.content);
      const authKey = toBuffer(getBinaryNodeChild(reg, 'companion_server_auth_key_pub')?.content);
      if (!/^\d{5,20}$/.test(user) || !wrapped || wrapped.length !== 80 || conn.kind !== 'registration') {
        return error(400, 'bad-request');
      }
      if (!authKey || !conn.clientStatic || authKey.compare(conn.clientStatic) !== 0) return error(400, 'bad-request');
      const ref = deriveBytes(this.seed, `link-code-ref|${conn.id}|${user}`, 16).toString('base64');
      this._linkCodes.set(user, { conn, number: user, wrapped, ref: Buffer.from(ref), finish: null });
      this._notify();
      return result([
        {
          tag: 'link_code_companion_reg',
          attrs: {},
          content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }],
        },
      ]);
    }
    if (stage === 'companion_finish') {
      result();
      for (const e of this._linkCodes.values()) {
        if (e.conn === conn && e.finish) e.finish(node);
      }
      return true;
    }
    return result();
  }

  /** @param {BinaryNode} node @returns {BinaryNode} */
  _usync(node) {
    const usync = getBinaryNodeChild(node, 'usync');
    const query = getBinaryNodeChild(usync, 'query');
    const protocols = Array.isArray(query?.content) ? query.content.map((c) => c.tag) : [];
    const users = getBinaryNodeChildren(getBinaryNodeChild(usync, 'list'), 'user');
    /** @type {BinaryNode[]} */
    const out = [];
    for (const u of users) {
      let number;
      let askedJid = u.attrs.jid;
      if (askedJid) {
        const [userPart, server] = askedJid.split('@');
        const bare = (userPart ?? '').split(':')[0];
        if (server === 'lid') number = [...this._phones.values()].find((p) => p.lidUser === bare)?.number;
        else number = bare;
      } else {
        const contact = getBinaryNodeChild(u, 'contact');
        const c = contact?.content;
        number = c
          ? Buffer.isBuffer(c) || c instanceof Uint8Array
            ? Buffer.from(c).toString()
            : String(c)
          : undefined;
        number = number?.replace(/\D/g, '');
      }
      if (!number) continue;
      const phone = this._phones.get(number);
      const known = !!phone?.registered;
      const jid = askedJid ?? `${number}@${S_WHATSAPP_NET}`;
      /** @type {BinaryNode[]} */
      const content = [];
      for (const p of protocols) {
        if (p === 'contact') content.push({ tag: 'contact', attrs: { type: known ? 'in' : 'out' } });
        else if (!known || !phone) continue;
        else if (p === 'devices') {
          const devs = [...this._devices.values()].filter((d) => d.phone === number && !d.removed);
          content.push({
            tag: 'devices',
            attrs: {},
            content: [
              {
                tag: 'device-list',
                attrs: {},
                content: [
                  { tag: 'device', attrs: { id: '0' } },
                  ...devs.map((d) => ({
                    tag: 'device',
                    attrs: { id: String(d.deviceId), 'key-index': String(d.keyIndex) },
                  })),
                ],
              },
            ],
          });
        } else if (p === 'lid') {
          // a LID asked about has no other LID; answering one would make Baileys store a LID↔LID
          // "mapping" (lib/Signal/lid-mapping.js rejects it with a warning)
          if (!askedJid?.endsWith('@lid')) content.push({ tag: 'lid', attrs: { val: `${phone.lidUser}@lid` } });
        } else if (p === 'status')
          content.push({ tag: 'status', attrs: { t: '0' }, content: Buffer.from('Hey there! I am using WhatsApp.') });
        else if (p === 'disappearing_mode')
          content.push({ tag: 'disappearing_mode', attrs: { duration: '0', t: '0' } });
      }
      out.push({ tag: 'user', attrs: { jid }, content });
    }
    return {
      tag: 'usync',
      attrs: {
        sid: usync?.attrs.sid ?? '',
        mode: usync?.attrs.mode ?? 'query',
        context: usync?.attrs.context ?? 'interactive',
        last: 'true',
        index: '0',
      },
      content: [
        { tag: 'result', attrs: {}, content: protocols.map((p) => ({ tag: p, attrs: {} })) },
        { tag: 'list', attrs: {}, content: out },
      ],
    };
  }

  // ---------------------------------------------------------------- helpers

  /** @param {Conn} conn @param {string} id @returns {Promise<BinaryNode>} */
  _waitIq(conn, id) {
    return new Promise((resolve, reject) => {
      const timer = this._setTimer(() => {
        conn.waiters.delete(id);
        reject(new Error(`timed out waiting for the client's answer to iq ${id}`));
      }, this.pairTimeoutMs);
      conn.waiters.set(id, {
        resolve: (n) => {
          this._clearTimer(timer);
          resolve(n);
        },
        reject: (e) => {
          this._clearTimer(timer);
          reject(e);
        },
      });
    });
  }

  /**
   * connections for a jid (device jid, device lid, phone number or phone jid); all when omitted
   * @param {string} [jid] @param {boolean} [loggedInOnly]
   */
  _select(jid, loggedInOnly = false) {
    const conns = [...this._conns].filter((c) => c.live && !c.ended);
    if (!jid) return loggedInOnly ? conns.filter((c) => c.device) : conns;
    const devs = new Set(this._matchDevices(jid));
    return conns.filter((c) => c.device && devs.has(c.device));
  }

  /** @param {string} jid */
  _matchDevices(jid) {
    const devs = [...this._devices.values()];
    const exact = devs.filter((d) => d.jid === jid || d.lid === jid);
    if (exact.length) return exact;
    const bare = (jid.split('@')[0] ?? '').split(':')[0];
    return devs.filter((d) => d.phone === bare || d.lid.split(':')[0] === bare);
  }

  /** @param {string} number @param {string|undefined} name @returns {PhoneRecord} */
  _phone(number, name) {
    let p = this._phones.get(number);
    if (!p) {
      const index = ++this._phoneSeq;
      p = {
        number,
        lidUser: String(100000000000000 + index),
        name,
        account: deriveKeyPair(this.seed, `account|${number}`),
        identity: deriveKeyPair(this.seed, `phone-identity|${number}`),
        nextDeviceId: 1,
        nextKeyIndex: 1,
        registered: false,
      };
      this._phones.set(number, p);
    } else if (name && !p.name) {
      p.name = name;
    }
    return p;
  }

  /** @param {string} number */
  _phoneIndex(number) {
    return Number(this._phones.get(number)?.lidUser ?? 0) % 100000;
  }

  _nextDefaultNumber() {
    let n;
    do {
      n = `1555${String(++this._defaultNumberSeq).padStart(7, '0')}`;
    } while (this._phones.get(n)?.registered);
    return n;
  }

  _nextIqId() {
    return `wats.${++this._iqSeq}`;
  }

  _notify() {
    this._events.emit('change');
  }

  /** @param {() => void} fn @param {number} ms */
  _setTimer(fn, ms) {
    const t = setTimeout(() => {
      this._timers.delete(t);
      fn();
    }, ms);
    this._timers.add(t);
    return t;
  }

  /** @param {NodeJS.Timeout} t */
  _clearTimer(t) {
    clearTimeout(t);
    this._timers.delete(t);
  }
}

/** @param {unknown} c @returns {Buffer|undefined} */
function toBuffer(c) {
  if (c == null) return undefined;
  if (Buffer.isBuffer(c)) return c;
  if (c instanceof Uint8Array) return Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  if (typeof c === 'string') return Buffer.from(c, 'utf-8');
  return undefined;
}

/**
 * PBKDF2-SHA256, 2<<16 iterations, 32 bytes (what Baileys' derivePairingCodeKey computes).
 * @param {string} code @param {Buffer} salt @returns {Promise<Buffer>}
 */
function pbkdf2Key(code, salt) {
  return new Promise((resolve, reject) =>
    pbkdf2(Buffer.from(code, 'utf-8'), salt, 2 << 16, 32, 'sha256', (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/**
 * Start a test server.
 * @param {TestServerOptions} [options]
 * @returns {Promise<TestServer>}
 */
export async function startTestServer(options = {}) {
  const server = new TestServer(options);
  await server._startListening();
  return server;
}
