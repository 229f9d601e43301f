// @ts-check
/**
 * Message routing for the loopback test server: pre-key bundles, `encrypt` key fetches, fan-out of
 * `message` stanzas to every target device, per-device queues with offline replay, receipt
 * forwarding, the simulated phones (phone.js) and the messaging faults.
 *
 * What the rc14 client expects is read from node_modules/@whiskeysockets/baileys/lib:
 * - lib/Socket/messages-send.js relayMessage: one `<message>` per send, `<participants><to jid><enc/>`
 *   per device (or one top-level `<enc count>` with `to` = the device for a retry resend), device
 *   lists by usync, bundles by LID (`assertSessions`).
 * - lib/Utils/decode-wa-message.js decodeMessageNode: what a delivered copy must carry (`from` the
 *   sender device, `recipient` for copies of own messages, `sender_lid`/`sender_pn` for the other
 *   addressing, `t`, `notify`, `offline` for the backlog).
 * - lib/Socket/messages-recv.js handleReceipt / handleBadAck / sendRetryRequest: what forwarded
 *   receipts and error acks must look like.
 */
import {
  getBinaryNodeChild,
  getBinaryNodeChildren,
  jidDecode,
  encodeBigEndian,
  KEY_BUNDLE_TYPE,
} from '@whiskeysockets/baileys';
import { createRequire } from 'node:module';
import { BAILEYS_ENTRY } from './crypto.js';
import { SimPhone } from './phone.js';

/** @typedef {import('@whiskeysockets/baileys').BinaryNode} BinaryNode */
/**
 * What the router needs of the TestServer (server.js passes itself).
 * @typedef {object} PhoneRecord
 * @property {string} number
 * @property {string} lidUser
 * @property {string|undefined} name
 * @property {import('./crypto.js').KeyPair} account
 * @property {boolean} registered
 */
/**
 * @typedef {object} ConnLike
 * @property {boolean} live
 * @property {boolean} ended
 * @property {boolean} replayed  the offline backlog was pushed (live copies may follow)
 * @property {import('node:net').Socket} socket
 */
/**
 * @typedef {object} DeviceRecord
 * @property {string} jid
 * @property {string} phone
 * @property {number} deviceId
 * @property {string|undefined} name
 * @property {boolean} removed
 * @property {ConnLike|null} conn
 */
/**
 * @typedef {object} ServerLike
 * @property {string} seed
 * @property {Map<string, PhoneRecord>} _phones
 * @property {Map<string, DeviceRecord>} _devices
 * @property {(number: string, name: string|undefined) => PhoneRecord} _phone
 * @property {(conn: any, node: BinaryNode) => boolean} _send
 * @property {() => void} _notify
 */

/** @type {{ PreKeyWhisperMessage: any }} */
const signalProtobufs = createRequire(BAILEYS_ENTRY)('libsignal/src/protobufs.js');

const S_WHATSAPP_NET = 's.whatsapp.net';
const nowSeconds = () => String(Math.floor(Date.now() / 1000));
/** receipts that go to the sending device only (notes: messaging-notes.md "Assumptions") */
const SENDER_ONLY_RECEIPTS = new Set(['retry', 'sender', 'peer_msg']);
/** receipts the server consumes without forwarding */
const UNFORWARDED_RECEIPTS = new Set(['hist_sync', 'server-error']);
const MAX_LOG = 20000;

/**
 * @typedef {object} Bundle
 * @property {number} registrationId
 * @property {Buffer} identity                 32-byte identity public key
 * @property {{ id: number, public: Buffer, signature: Buffer }} signedPreKey
 * @property {Map<number, Buffer>} preKeys     one-time pre-keys not handed out yet
 */

/**
 * @typedef {object} QueueEntry
 * @property {number} seq
 * @property {'message'|'receipt'} kind
 * @property {string} id
 * @property {BinaryNode} node       the stanza as delivered (without `offline`)
 * @property {Endpoint} from         the sending (or receipting) endpoint
 * @property {'pn'|'lid'} mode       addressing of the copy
 * @property {string|undefined} chat destination chat of the original message
 * @property {boolean} twice         duplicate fault: push the stanza twice
 * @property {boolean} keepOnce      duplicate fault: survive the first receipt (replayed after a reconnect)
 * @property {number} pushes
 */

/**
 * @typedef {object} Fault
 * @property {'ack-error'|'drop-before-ack'|'duplicate'|'corrupt'} kind
 * @property {string|undefined} jid   which endpoint(s): see Router.matches
 * @property {number} remaining       Infinity for persistent faults
 * @property {number} [code]
 * @property {'twice'|'after-reconnect'} [mode]
 * @property {boolean} [deliver]
 */

/**
 * @typedef {object} LogEntry
 * @property {number} seq
 * @property {number} at
 * @property {'in'|'out'} dir      in: a stanza an endpoint sent to the server; out: one the server delivered
 * @property {'message'|'receipt'|'ack'} tag
 * @property {string} id
 * @property {string} device      the endpoint's phone-number device jid (`N:D@s.whatsapp.net`, `N@s.whatsapp.net` for a phone)
 * @property {string} [to]
 * @property {string} [from]
 * @property {string} [type]
 * @property {string} [class]
 * @property {string} [error]
 * @property {string} [category]
 * @property {boolean} [offline]
 * @property {string[]} [targets]  message in: device jids a copy was stored for
 * @property {string} [outcome]    message in: 'routed' | 'ack-error' | 'dropped-before-ack' | 'lid-migrated'
 * @property {string[]} [encTypes]
 */

export class Endpoint {
  /**
   * @param {PhoneRecord} phone
   * @param {number} deviceId
   * @param {DeviceRecord|null} device
   */
  constructor(phone, deviceId, device) {
    this.phone = phone;
    this.deviceId = deviceId;
    this.device = device;
    /** @type {SimPhone|null} */
    this.sim = null;
    /** @type {Bundle|null} */
    this.bundle = null;
    /** @type {QueueEntry[]} */
    this.queue = [];
    /** @type {Map<string, QueueEntry>} the last copy delivered per message id (for receipts) */
    this.delivered = new Map();
  }
  /** @param {'pn'|'lid'} mode */
  jid(mode) {
    const user = mode === 'lid' ? this.phone.lidUser : this.phone.number;
    const server = mode === 'lid' ? 'lid' : S_WHATSAPP_NET;
    return this.deviceId ? `${user}:${this.deviceId}@${server}` : `${user}@${server}`;
  }
  get pn() {
    return this.jid('pn');
  }
  /** the live, logged-in connection of a companion */
  get conn() {
    const c = this.device?.conn;
    return c && c.live && !c.ended ? c : null;
  }
}

export class Router {
  /** @param {ServerLike} server */
  constructor(server) {
    this.server = server;
    /** @type {Map<string, Endpoint>} key `${number}.${deviceId}` */
    this.endpoints = new Map();
    /** @type {LogEntry[]} */
    this.log = [];
    /** @type {Fault[]} */
    this.faults = [];
    /** @type {Set<string>} numbers that refuse phone-number addressed messages (463) */
    this.lidMigrated = new Set();
    /** @type {Array<string|undefined>} receipt holds (jid specs) */
    this.holds = [];
    /** @type {Array<{ from: Endpoint, node: BinaryNode, info: QueueEntry }>} */
    this.held = [];
    this.seq = 0;
  }

  // ------------------------------------------------------------ endpoints

  /** @param {PhoneRecord} phone @param {number} deviceId @param {DeviceRecord|null} device */
  _endpoint(phone, deviceId, device) {
    const key = `${phone.number}.${deviceId}`;
    let ep = this.endpoints.get(key);
    if (!ep) {
      ep = new Endpoint(phone, deviceId, device);
      this.endpoints.set(key, ep);
    }
    if (device) ep.device = device;
    if (deviceId === 0 && !ep.sim) {
      // every phone has a Signal identity of its own, so senders' device-0 fetches succeed; the
      // phone's identity is its ADV account key (as on a real primary device)
      ep.sim = new SimPhone({
        seed: this.server.seed,
        number: phone.number,
        identity: phone.account,
        router: this,
        endpoint: ep,
      });
      ep.bundle = ep.sim.bundle;
    }
    return ep;
  }

  /** @param {DeviceRecord} device */
  deviceEndpoint(device) {
    return this._endpoint(this.server._phone(device.phone, undefined), device.deviceId, device);
  }

  /** @param {PhoneRecord} phone */
  phoneEndpoint(phone) {
    return this._endpoint(phone, 0, null);
  }

  /** @param {string} user @param {'pn'|'lid'} mode */
  _phoneByUser(user, mode) {
    if (mode === 'pn') return this.server._phones.get(user);
    return [...this.server._phones.values()].find((p) => p.lidUser === user);
  }

  /**
   * The account a user jid (PN or LID, device part ignored) or bare number names, if registered.
   * @param {string} jid @returns {{ phone: PhoneRecord, mode: 'pn'|'lid' } | null}
   */
  resolveAccount(jid) {
    const s = String(jid);
    if (!s.includes('@')) {
      const phone = this.server._phones.get(s.replace(/\D/g, ''));
      return phone?.registered ? { phone, mode: 'pn' } : null;
    }
    const d = jidDecode(s);
    if (!d?.user || (d.server !== 'lid' && d.server !== S_WHATSAPP_NET)) return null;
    const mode = d.server === 'lid' ? 'lid' : 'pn';
    const phone = this._phoneByUser(d.user, mode);
    return phone?.registered ? { phone, mode } : null;
  }

  /**
   * A device jid (PN or LID; no device part = device 0, the phone) → its endpoint.
   * @param {string} jid @returns {{ ep: Endpoint, mode: 'pn'|'lid' } | null}
   */
  resolve(jid) {
    const acc = this.resolveAccount(jid);
    if (!acc) return null;
    const deviceId = jidDecode(jid)?.device ?? 0;
    if (!deviceId) return { ep: this.phoneEndpoint(acc.phone), mode: acc.mode };
    const device = this.server._devices.get(`${acc.phone.number}:${deviceId}@${S_WHATSAPP_NET}`);
    if (!device || device.removed) return null;
    return { ep: this.deviceEndpoint(device), mode: acc.mode };
  }

  /** the phone and the paired, not removed companions of an account. @param {PhoneRecord} phone */
  accountEndpoints(phone) {
    /** @type {Endpoint[]} */
    const out = phone.registered ? [this.phoneEndpoint(phone)] : [];
    for (const d of this.server._devices.values()) {
      if (d.phone === phone.number && !d.removed) out.push(this.deviceEndpoint(d));
    }
    return out;
  }

  /**
   * Does the endpoint fall under a jid spec? undefined: every endpoint; a bare number or a user jid
   * without device (`N@s.whatsapp.net`, `L@lid`): every device of that account; a device jid
   * (`N:2@s.whatsapp.net`, `L:2@lid`, `N:0@s.whatsapp.net` for the phone): that device.
   * @param {Endpoint} ep @param {string|undefined} spec
   */
  matches(ep, spec) {
    if (spec === undefined || spec === null || spec === '') return true;
    const s = String(spec);
    if (!s.includes('@')) return ep.phone.number === s.replace(/\D/g, '');
    const d = jidDecode(s);
    if (!d?.user) return false;
    const user = d.server === 'lid' ? ep.phone.lidUser : ep.phone.number;
    if (user !== d.user) return false;
    // jidDecode gives no device for `N@…` and for `N:0@…` alike; tell them apart by the text
    const explicit = /:\d+@/.test(s);
    return !explicit || ep.deviceId === (d.device ?? 0);
  }

  // ------------------------------------------------------------ bundles / iqs

  /**
   * Seed a new companion's bundle from its registration (identity, registration id, signed
   * pre-key); one-time keys come with its first upload.
   * @param {DeviceRecord} device
   * @param {{ identityKey: Buffer, registrationId: number, signedPreKeyId: number, signedPreKey: Buffer, signedPreKeySignature: Buffer }} reg
   */
  onPaired(device, reg) {
    const ep = this.deviceEndpoint(device);
    ep.bundle = {
      registrationId: reg.registrationId,
      identity: reg.identityKey,
      signedPreKey: { id: reg.signedPreKeyId, public: reg.signedPreKey, signature: reg.signedPreKeySignature },
      preKeys: new Map(),
    };
    ep.queue = [];
    ep.delivered.clear();
  }

  /** `<iq xmlns=encrypt type=set>` with registration/identity/list/skey (lib/Utils/signal.js getNextPreKeysNode) @param {DeviceRecord} device @param {BinaryNode} node */
  upload(device, node) {
    const ep = this.deviceEndpoint(device);
    const reg = toBuffer(getBinaryNodeChild(node, 'registration')?.content);
    const identity = toBuffer(getBinaryNodeChild(node, 'identity')?.content);
    const bundle = ep.bundle ?? {
      registrationId: 0,
      identity: Buffer.alloc(32),
      signedPreKey: { id: 0, public: Buffer.alloc(32), signature: Buffer.alloc(64) },
      preKeys: new Map(),
    };
    if (reg && reg.length === 4) bundle.registrationId = reg.readUInt32BE(0);
    if (identity && identity.length === 32) bundle.identity = identity;
    const skey = parseSignedKey(getBinaryNodeChild(node, 'skey'));
    if (skey) bundle.signedPreKey = skey;
    let n = 0;
    for (const k of getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'key')) {
      const id = toBuffer(getBinaryNodeChild(k, 'id')?.content);
      const value = toBuffer(getBinaryNodeChild(k, 'value')?.content);
      if (!id || !value) continue;
      bundle.preKeys.set(id.readUIntBE(0, id.length), value);
      n++;
    }
    ep.bundle = bundle;
    return n;
  }

  /** `<rotate><skey/></rotate>` (lib/Socket/socket.js rotateSignedPreKey) @param {DeviceRecord} device @param {BinaryNode} node */
  rotate(device, node) {
    const ep = this.deviceEndpoint(device);
    const skey = parseSignedKey(getBinaryNodeChild(getBinaryNodeChild(node, 'rotate'), 'skey'));
    if (skey && ep.bundle) ep.bundle.signedPreKey = skey;
    return !!skey;
  }

  /** one-time pre-keys still on the server for a companion. @param {DeviceRecord} device */
  availablePreKeys(device) {
    return this.deviceEndpoint(device).bundle?.preKeys.size ?? 0;
  }

  /**
   * Hand out an endpoint's bundle, popping the lowest one-time pre-key (lib/Utils/signal.js
   * parseAndInjectE2ESessions reads what this returns).
   * @param {Endpoint} ep
   * @returns {(Omit<Bundle, 'preKeys'> & { preKey?: { id: number, public: Buffer } }) | null}
   */
  popBundle(ep) {
    const b = ep.bundle;
    if (!b) return null;
    /** @type {{ id: number, public: Buffer } | undefined} */
    let preKey;
    const first = [...b.preKeys.keys()].sort((x, y) => x - y)[0];
    if (first !== undefined) {
      preKey = { id: first, public: /** @type {Buffer} */ (b.preKeys.get(first)) };
      b.preKeys.delete(first);
    }
    ep.sim?.replenish();
    return { registrationId: b.registrationId, identity: b.identity, signedPreKey: b.signedPreKey, preKey };
  }

  /**
   * `<iq xmlns=encrypt type=get><key><user jid/>…</key></iq>` (lib/Socket/messages-send.js
   * assertSessions): PN or LID jids, device-qualified or not (= device 0, the phone).
   * @param {BinaryNode} node @returns {BinaryNode}
   */
  keyFetch(node) {
    const users = getBinaryNodeChildren(getBinaryNodeChild(node, 'key'), 'user');
    /** @type {BinaryNode[]} */
    const out = [];
    for (const u of users) {
      const jid = u.attrs.jid ?? '';
      const r = this.resolve(jid);
      const b = r ? this.popBundle(r.ep) : null;
      if (!b) {
        // one `<error>` aborts the sender's whole fetch (assertNodeErrorFree), as on WhatsApp
        out.push({
          tag: 'user',
          attrs: { jid },
          content: [{ tag: 'error', attrs: { code: '404', text: 'item-not-found' } }],
        });
        continue;
      }
      /** @type {BinaryNode[]} */
      const content = [
        { tag: 'registration', attrs: {}, content: encodeBigEndian(b.registrationId, 4) },
        { tag: 'type', attrs: {}, content: Buffer.from(KEY_BUNDLE_TYPE) },
        { tag: 'identity', attrs: {}, content: b.identity },
        {
          tag: 'skey',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: encodeBigEndian(b.signedPreKey.id, 3) },
            { tag: 'value', attrs: {}, content: b.signedPreKey.public },
            { tag: 'signature', attrs: {}, content: b.signedPreKey.signature },
          ],
        },
      ];
      if (b.preKey) {
        content.push({
          tag: 'key',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: encodeBigEndian(b.preKey.id, 3) },
            { tag: 'value', attrs: {}, content: b.preKey.public },
          ],
        });
      }
      out.push({ tag: 'user', attrs: { jid }, content });
    }
    this.server._notify();
    return { tag: 'list', attrs: {}, content: out };
  }

  // ------------------------------------------------------------ faults

  /** @param {Omit<Fault, 'remaining'> & { remaining?: number }} f */
  addFault(f) {
    this.faults.push({ remaining: 1, ...f });
  }

  /** @param {Fault['kind']} kind @param {Endpoint} ep */
  _takeFault(kind, ep) {
    const f = this.faults.find((x) => x.kind === kind && x.remaining > 0 && this.matches(ep, x.jid));
    if (!f) return undefined;
    f.remaining--;
    if (f.remaining <= 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  /** @param {Endpoint} ep */
  _isHeld(ep) {
    return this.holds.some((spec) => this.matches(ep, spec));
  }

  /** @param {string|undefined} jid */
  releaseReceipts(jid) {
    this.holds = jid === undefined ? [] : this.holds.filter((h) => h !== jid);
    const ready = this.held.filter((h) => !this._isHeld(h.from));
    this.held = this.held.filter((h) => this._isHeld(h.from));
    for (const h of ready) this._forwardReceipt(h.from, h.node, h.info);
    return ready.length;
  }

  clearFaults() {
    this.faults = [];
    this.lidMigrated.clear();
    return this.releaseReceipts(undefined);
  }

  // ------------------------------------------------------------ stanzas

  /** @param {Omit<LogEntry, 'seq'|'at'>} e */
  _log(e) {
    const entry = { seq: ++this.seq, at: Date.now(), ...e };
    this.log.push(entry);
    if (this.log.length > MAX_LOG) this.log.splice(0, this.log.length - MAX_LOG);
    return entry;
  }

  /**
   * A `<message>` from an endpoint (a client's connection, or a simulated phone with conn null):
   * store one copy per target device, ack the sender, then push the copies.
   * @param {Endpoint} sender @param {BinaryNode} node @param {ConnLike|null} conn
   */
  onMessage(sender, node, conn) {
    const id = node.attrs.id ?? '';
    const to = node.attrs.to ?? '';
    /** @type {Array<{ jid: string, enc: BinaryNode }>} */
    let targets = [];
    for (const t of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(t, 'enc');
      if (t.attrs.jid && enc) targets.push({ jid: t.attrs.jid, enc });
    }
    // a retry resend (participant given) carries one top-level `<enc count>` for the device in `to`
    // (lib/Socket/messages-send.js relayMessage isRetryResend); a peer message too, for device 0
    const top = getBinaryNodeChild(node, 'enc');
    if (top && to) targets = [...targets.filter((t) => t.jid !== to), { jid: to, enc: top }];
    const entry = this._log({
      dir: 'in',
      tag: 'message',
      id,
      device: sender.pn,
      to,
      type: node.attrs.type,
      category: node.attrs.category,
      encTypes: targets.map((t) => t.enc.attrs.type ?? ''),
      targets: [],
      outcome: 'routed',
    });
    const ackError = this._takeFault('ack-error', sender);
    if (ackError) {
      entry.outcome = 'ack-error';
      entry.error = String(ackError.code ?? 463);
      this._ack(sender, conn, node, entry.error);
      return;
    }
    // contacts WhatsApp has moved to LID refuse phone-number addressed messages with 463
    // (messaging-notes.md "LID"); own-account (DSM / peer) traffic is not affected
    const dest = to ? this.resolveAccount(to) : null;
    if (dest && dest.mode === 'pn' && dest.phone !== sender.phone && this.lidMigrated.has(dest.phone.number)) {
      entry.outcome = 'lid-migrated';
      entry.error = '463';
      this._ack(sender, conn, node, '463');
      return;
    }
    const drop = this._takeFault('drop-before-ack', sender);
    const deviceIdentity = getBinaryNodeChild(node, 'device-identity');
    /** @type {Array<[Endpoint, QueueEntry]>} */
    const copies = [];
    if (!drop || drop.deliver !== false) {
      for (const t of targets) {
        const r = this.resolve(t.jid);
        if (!r || r.ep === sender) continue;
        const ep = r.ep;
        const sameAccount = ep.phone === sender.phone;
        /** @type {Record<string, string>} */
        const attrs = {
          from: sender.jid(r.mode),
          id,
          t: nowSeconds(),
          type: node.attrs.type ?? 'text',
        };
        const name = sender.device?.name ?? sender.phone.name;
        if (name) attrs.notify = name;
        // the other addressing of the sender, so the receiver learns the LID↔PN mapping
        // (lib/Utils/decode-wa-message.js extractAddressingContext)
        if (r.mode === 'pn') attrs.sender_lid = `${sender.phone.lidUser}@lid`;
        else attrs.sender_pn = `${sender.phone.number}@${S_WHATSAPP_NET}`;
        if (node.attrs.category) attrs.category = node.attrs.category;
        // a copy of an own message names the chat it went to (decodeMessageNode: recipient ⇒ fromMe)
        const chat = node.attrs.recipient ?? to;
        if (sameAccount && node.attrs.category !== 'peer' && chat) attrs.recipient = chat;
        let encContent = toBuffer(t.enc.content) ?? Buffer.alloc(0);
        if (this._takeFault('corrupt', ep)) encContent = corruptCiphertext(encContent, t.enc.attrs.type);
        /** @type {BinaryNode[]} */
        const content = [{ tag: 'enc', attrs: { ...t.enc.attrs }, content: encContent }];
        if (deviceIdentity && t.enc.attrs.type === 'pkmsg') content.push(deviceIdentity);
        const dup = this._takeFault('duplicate', ep);
        /** @type {QueueEntry} */
        const q = {
          seq: ++this.seq,
          kind: 'message',
          id,
          node: { tag: 'message', attrs, content },
          from: sender,
          mode: r.mode,
          chat: chat || undefined,
          twice: dup?.mode !== 'after-reconnect' && !!dup,
          keepOnce: dup?.mode === 'after-reconnect',
          pushes: 0,
        };
        if (!ep.sim) ep.queue.push(q);
        ep.delivered.set(id, q);
        copies.push([ep, q]);
        entry.targets?.push(ep.jid(r.mode));
      }
    }
    this.server._notify();
    if (drop) {
      // read (and stored), but the sender never sees the ack
      entry.outcome = 'dropped-before-ack';
      conn?.socket.destroy();
    } else {
      this._ack(sender, conn, node, undefined);
    }
    for (const [ep, q] of copies) this._push(ep, q, false);
  }

  /** @param {Endpoint} sender @param {ConnLike|null} conn @param {BinaryNode} node @param {string|undefined} error */
  _ack(sender, conn, node, error) {
    /** @type {Record<string, string>} */
    const attrs = { class: 'message', id: node.attrs.id ?? '', t: nowSeconds() };
    // lib/Socket/messages-recv.js handleBadAck takes the chat from the ack's `from`
    if (node.attrs.to) attrs.from = node.attrs.to;
    if (error) attrs.error = error;
    if (sender.sim) sender.sim.onAck(attrs);
    else if (conn) this.server._send(conn, { tag: 'ack', attrs });
  }

  /**
   * Deliver a stored stanza to its endpoint now if it can take it (a phone always, a companion
   * when logged in and past the offline replay); otherwise it waits in the queue.
   * @param {Endpoint} ep @param {QueueEntry} q @param {boolean} offline
   */
  _push(ep, q, offline) {
    if (ep.sim) {
      if (q.kind === 'message') {
        this._log({ dir: 'out', tag: 'message', id: q.id, device: ep.pn, from: q.node.attrs.from, offline: false });
        for (let i = 0; i < (q.twice ? 2 : 1); i++) void ep.sim.deliver(q);
      } else {
        ep.sim.onReceipt(q.node);
      }
      return;
    }
    const conn = ep.conn;
    if (!conn || (!conn.replayed && !offline)) return;
    const node = offline ? { ...q.node, attrs: { ...q.node.attrs, offline: '1' } } : q.node;
    for (let i = 0; i < (q.twice ? 2 : 1); i++) {
      if (!this.server._send(conn, node)) return;
      q.pushes++;
      this._log({
        dir: 'out',
        tag: q.kind,
        id: q.id,
        device: ep.pn,
        from: node.attrs.from,
        type: node.attrs.type,
        offline,
      });
    }
  }

  /**
   * A `<receipt>` from an endpoint: drop the receipted copies from its queue, forward it to the
   * sender's devices (or hold it back).
   * @param {Endpoint} from @param {BinaryNode} node
   */
  onReceipt(from, node) {
    const id = node.attrs.id ?? '';
    const type = node.attrs.type;
    this._log({ dir: 'in', tag: 'receipt', id, device: from.pn, to: node.attrs.to, type });
    const ids = [id];
    const list = getBinaryNodeChild(node, 'list');
    for (const item of getBinaryNodeChildren(list, 'item')) if (item.attrs.id) ids.push(item.attrs.id);
    /** @type {QueueEntry|undefined} */
    let info;
    for (const mid of ids) {
      const d = from.delivered.get(mid);
      info ??= d;
      from.queue = from.queue.filter((q) => {
        if (q.kind !== 'message' || q.id !== mid) return true;
        if (q.keepOnce) {
          q.keepOnce = false; // duplicate fault: this copy comes again at the next login
          return true;
        }
        return false;
      });
    }
    this.server._notify();
    if (!info || UNFORWARDED_RECEIPTS.has(type ?? '')) return;
    if (this._isHeld(from)) {
      this.held.push({ from, node, info });
      return;
    }
    this._forwardReceipt(from, node, info);
  }

  /** @param {Endpoint} from @param {BinaryNode} node @param {QueueEntry} info */
  _forwardReceipt(from, node, info) {
    const type = node.attrs.type;
    const sender = info.from;
    const targets = SENDER_ONLY_RECEIPTS.has(type ?? '')
      ? [sender]
      : this.accountEndpoints(sender.phone).filter((ep) => ep !== from);
    /** @type {Record<string, string>} */
    const attrs = { from: from.jid(info.mode), id: node.attrs.id ?? '', t: node.attrs.t ?? nowSeconds() };
    if (type) attrs.type = type;
    // a receipt from another device of the sender's own account names the chat
    // (lib/Socket/messages-recv.js handleReceipt: remoteJid = recipient when from me)
    if (from.phone === sender.phone && info.chat) attrs.recipient = info.chat;
    for (const ep of targets) {
      /** @type {QueueEntry} */
      const q = {
        seq: ++this.seq,
        kind: 'receipt',
        id: attrs.id ?? '',
        node: { tag: 'receipt', attrs, ...(node.content ? { content: node.content } : {}) },
        from,
        mode: info.mode,
        chat: info.chat,
        twice: false,
        keepOnce: false,
        pushes: 0,
      };
      if (!ep.sim) ep.queue.push(q);
      this._push(ep, q, false);
    }
  }

  /** a client's `<ack>` (receipts queued for it are done once it acks them). @param {Endpoint} ep @param {BinaryNode} node */
  onClientAck(ep, node) {
    const cls = node.attrs.class;
    const id = node.attrs.id ?? '';
    this._log({
      dir: 'in',
      tag: 'ack',
      id,
      device: ep.pn,
      class: cls,
      to: node.attrs.to,
      type: node.attrs.type,
      error: node.attrs.error,
    });
    // Baileys never acks a message it accepted (it sends a receipt); an ack with an error is a nack
    // (487 for a second pkmsg, 500 after a retry receipt…, lib/Socket/messages-recv.js): the device
    // refused that copy, redelivering it at every login would not help
    if (cls === 'message' && node.attrs.error) {
      ep.queue = ep.queue.filter((q) => !(q.kind === 'message' && q.id === id && !q.keepOnce));
    }
    if (cls === 'receipt') {
      ep.queue = ep.queue.filter(
        (q) => !(q.kind === 'receipt' && q.id === id && q.node.attrs.type === node.attrs.type),
      );
    }
    this.server._notify();
  }

  /** counts for `<offline_preview>` at login. @param {Endpoint} ep */
  preview(ep) {
    const message = ep.queue.filter((q) => q.kind === 'message').length;
    const receipt = ep.queue.length - message;
    return { count: ep.queue.length, message, receipt };
  }

  /**
   * The client asked for its backlog (`offline_batch`): push every queued stanza with `offline`,
   * then `<ib><offline count/>` (lib/Socket/socket.js `CB:ib,,offline` ends the initial buffer; the
   * copies come out as `messages.upsert` type `append`).
   * @param {ConnLike} conn @param {Endpoint} ep
   */
  replay(conn, ep) {
    const backlog = [...ep.queue];
    for (const q of backlog) this._push(ep, q, true);
    conn.replayed = true;
    this.server._send(conn, {
      tag: 'ib',
      attrs: { from: S_WHATSAPP_NET },
      content: [{ tag: 'offline', attrs: { count: String(backlog.length) } }],
    });
  }

  /** @param {string} jid */
  queued(jid) {
    return [...this.endpoints.values()]
      .filter((ep) => !ep.sim && this.matches(ep, jid))
      .flatMap((ep) =>
        ep.queue.map((q) => ({
          device: ep.pn,
          kind: q.kind,
          id: q.id,
          from: q.node.attrs.from ?? '',
          type: q.node.attrs.type,
          pushes: q.pushes,
        })),
      );
  }
}

/** @param {BinaryNode|undefined} skey */
function parseSignedKey(skey) {
  if (!skey) return undefined;
  const id = toBuffer(getBinaryNodeChild(skey, 'id')?.content);
  const value = toBuffer(getBinaryNodeChild(skey, 'value')?.content);
  const signature = toBuffer(getBinaryNodeChild(skey, 'signature')?.content);
  if (!id || !value || !signature) return undefined;
  return { id: id.readUIntBE(0, id.length), public: value, signature };
}

/**
 * Flip a bit in the ciphertext's MAC so that libsignal fails with "Bad MAC" but the message still
 * parses (for a pkmsg, inside the embedded WhisperMessage, so the pre-key part stays valid and
 * the receiver asks for a retry).
 * @param {Buffer} ct @param {string|undefined} type
 */
export function corruptCiphertext(ct, type) {
  if (type === 'pkmsg') {
    const msg = signalProtobufs.PreKeyWhisperMessage.decode(ct.subarray(1));
    const inner = Buffer.from(msg.message);
    inner[inner.length - 1] = (inner[inner.length - 1] ?? 0) ^ 0x01;
    msg.message = inner;
    return Buffer.concat([ct.subarray(0, 1), Buffer.from(signalProtobufs.PreKeyWhisperMessage.encode(msg).finish())]);
  }
  const copy = Buffer.from(ct);
  copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0x01;
  return copy;
}

/** @param {unknown} c @returns {Buffer|undefined} */
function toBuffer(c) {
  if (c == null) return undefined;
  if (Buffer.isBuffer(c)) return c;
  if (c instanceof Uint8Array) return Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  if (typeof c === 'string') return Buffer.from(c, 'utf-8');
  return undefined;
}
