// @ts-check
/**
 * The simulated phone (device 0) of an account: its own libsignal identity, signed pre-key and
 * one-time pre-keys (served to senders by the router's `encrypt` key fetch), a libsignal store in
 * memory, and the two things a test needs from a phone: send a text into a session (Signal-encrypted
 * to every device of the target account, plus DSM copies to its own companions) and decrypt what
 * sessions send to it.
 *
 * libsignal is Baileys' own dependency, loaded with `createRequire` anchored at Baileys (as
 * crypto.js does), so the phone speaks exactly the Signal version the client under test uses.
 */
import { createRequire } from 'node:module';
import {
  proto,
  encodeWAMessage,
  unpadRandomMax16,
  generateMessageIDV2,
  encodeBigEndian,
  getBinaryNodeChild,
  jidNormalizedUser,
} from '@whiskeysockets/baileys';
import { BAILEYS_ENTRY, deriveBytes, deriveKeyPair, xeddsaSign } from './crypto.js';

/** @typedef {import('@whiskeysockets/baileys').BinaryNode} BinaryNode */
/** @typedef {import('./routing.js').Endpoint} Endpoint */
/** @typedef {import('./routing.js').Router} Router */
/** @typedef {import('./routing.js').QueueEntry} QueueEntry */
/** @typedef {import('./routing.js').Bundle} Bundle */

const requireFromBaileys = createRequire(BAILEYS_ENTRY);
/** @type {any} */
const libsignal = requireFromBaileys('libsignal');

/** 0x05 || 32-byte Montgomery key: the form libsignal wants for public keys */
const signalPub = (/** @type {Uint8Array} */ k) => Buffer.concat([Buffer.from([5]), Buffer.from(k)]);

/** how many one-time pre-keys the phone keeps on the server */
const PHONE_PREKEYS = 20;

/**
 * @typedef {object} PhoneMessage
 * @property {string} id
 * @property {string} from      the `from` of the stanza (sender device jid, PN or LID)
 * @property {string} chat      normalized chat jid (the sender, or the DSM destination for own messages)
 * @property {boolean} fromMe   a copy of a message another device of this account sent (DSM)
 * @property {string|undefined} text
 * @property {'pkmsg'|'msg'} encType
 * @property {string|undefined} category  'peer' for peer (app-state / placeholder) messages
 * @property {boolean} offline
 * @property {object} message   the decoded proto.Message (as a plain object)
 * @property {number} at
 */

/**
 * @typedef {object} PhoneFailure
 * @property {string} id
 * @property {string} from
 * @property {string} error
 * @property {number} at
 */

export class SimPhone {
  /**
   * @param {{ seed: string, number: string, identity: import('./crypto.js').KeyPair, router: Router, endpoint: Endpoint }} opts
   */
  constructor({ seed, number, identity, router, endpoint }) {
    this.seed = seed;
    this.number = number;
    this.identity = identity;
    this.router = router;
    this.endpoint = endpoint;
    this.registrationId = deriveBytes(seed, `phone-regid|${number}`, 2).readUInt16BE(0) & 0x3fff || 1;
    const spk = deriveKeyPair(seed, `phone-signed-prekey|${number}`);
    this.signedPreKey = { id: 1, keyPair: spk, signature: xeddsaSign(identity.private, signalPub(spk.public)) };
    /** @type {Map<number, import('./crypto.js').KeyPair>} private halves of the one-time pre-keys */
    this.preKeys = new Map();
    this.nextPreKeyId = 1;
    /** @type {Bundle} what the router serves to senders (one-time keys are popped from it) */
    this.bundle = {
      registrationId: this.registrationId,
      identity: identity.public,
      signedPreKey: { id: 1, public: spk.public, signature: this.signedPreKey.signature },
      preKeys: new Map(),
    };
    this.replenish();
    /** @type {Map<string, string>} serialized SessionRecords by libsignal address */
    this.sessions = new Map();
    /** @type {Map<string, Uint8Array>} */
    this.identities = new Map();
    /** @type {PhoneMessage[]} */
    this.received = [];
    /** @type {PhoneFailure[]} */
    this.failures = [];
    /** @type {Array<{ id: string, from: string, type: string|undefined, ids: string[], at: number }>} */
    this.receipts = [];
    /** @type {Array<{ id: string, error: string|undefined, at: number }>} */
    this.acks = [];
    /** @type {Promise<void>} decryptions run one at a time, in arrival order */
    this.chain = Promise.resolve();
    this.storage = this._storage();
  }

  /** keep PHONE_PREKEYS one-time pre-keys published (deterministic from seed and key id) */
  replenish() {
    while (this.bundle.preKeys.size < PHONE_PREKEYS) {
      const id = this.nextPreKeyId++;
      const kp = deriveKeyPair(this.seed, `phone-prekey|${this.number}|${id}`);
      this.preKeys.set(id, kp);
      this.bundle.preKeys.set(id, kp.public);
    }
  }

  /** @param {Endpoint} ep */
  address(ep) {
    // Always the LID form (`<lid>_1.<device>`), like Baileys' signal store once a LID mapping is
    // known (lib/Signal/libsignal.js resolveLIDSignalAddress): one session per device whichever
    // addressing a stanza used.
    return new libsignal.ProtocolAddress(`${ep.phone.lidUser}_1`, ep.deviceId);
  }

  _storage() {
    return {
      loadSession: async (/** @type {string} */ id) => {
        const s = this.sessions.get(id);
        // serialized on every store: a failed decryption must not leave a half-updated record behind
        return s ? libsignal.SessionRecord.deserialize(JSON.parse(s)) : undefined;
      },
      storeSession: async (/** @type {string} */ id, /** @type {any} */ record) => {
        this.sessions.set(id, JSON.stringify(record.serialize()));
      },
      isTrustedIdentity: async () => true, // TOFU, as Baileys' store
      loadIdentityKey: async (/** @type {string} */ id) => this.identities.get(id),
      saveIdentity: async (/** @type {string} */ id, /** @type {Uint8Array} */ key) => {
        this.identities.set(id, key);
        return true;
      },
      loadPreKey: async (/** @type {number|string} */ id) => {
        const kp = this.preKeys.get(Number(id));
        return kp ? { privKey: kp.private, pubKey: signalPub(kp.public) } : undefined;
      },
      removePreKey: async (/** @type {number|string} */ id) => {
        this.preKeys.delete(Number(id));
      },
      loadSignedPreKey: async () => ({
        privKey: this.signedPreKey.keyPair.private,
        pubKey: signalPub(this.signedPreKey.keyPair.public),
      }),
      getOurRegistrationId: async () => this.registrationId,
      getOurIdentity: async () => ({ privKey: this.identity.private, pubKey: signalPub(this.identity.public) }),
    };
  }

  /**
   * A copy the router routed to this phone. Decrypts it, records it and answers with a receipt
   * (delivery, `sender` for own DSM copies, `peer_msg` for peer messages) or, when it does not
   * decrypt, a retry receipt like a client would (lib/Socket/messages-recv.js sendRetryRequest).
   * @param {QueueEntry} entry
   */
  deliver(entry) {
    this.chain = this.chain.then(() => this._decrypt(entry)).catch(() => {});
    return this.chain;
  }

  /** @param {QueueEntry} entry */
  async _decrypt(entry) {
    const node = entry.node;
    const enc = getBinaryNodeChild(node, 'enc');
    const from = node.attrs.from ?? '';
    const id = node.attrs.id ?? '';
    const type = enc?.attrs.type === 'pkmsg' ? 'pkmsg' : 'msg';
    const cipher = new libsignal.SessionCipher(this.storage, this.address(entry.from));
    let plain;
    try {
      const ct = Buffer.from(/** @type {Uint8Array} */ (enc?.content));
      plain = type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(ct) : await cipher.decryptWhisperMessage(ct);
    } catch (err) {
      this.failures.push({ id, from, error: String(/** @type {Error} */ (err)?.message ?? err), at: Date.now() });
      this.router.server._notify();
      this.router.onReceipt(this.endpoint, {
        tag: 'receipt',
        attrs: { id, to: from, type: 'retry' },
        content: [
          { tag: 'retry', attrs: { count: '1', id, t: node.attrs.t ?? '0', v: '1' } },
          { tag: 'registration', attrs: {}, content: encodeBigEndian(this.registrationId) },
        ],
      });
      return;
    }
    this.replenish();
    let message = proto.Message.decode(unpadRandomMax16(plain));
    const dsm = message.deviceSentMessage;
    const fromMe = entry.from.phone === this.endpoint.phone;
    const chat = fromMe && dsm?.destinationJid ? jidNormalizedUser(dsm.destinationJid) : jidNormalizedUser(from);
    if (dsm?.message) message = proto.Message.fromObject(dsm.message);
    this.received.push({
      id,
      from,
      chat,
      fromMe,
      text: message.conversation || message.extendedTextMessage?.text || undefined,
      encType: type,
      category: node.attrs.category,
      offline: !!node.attrs.offline,
      message: proto.Message.toObject(message),
      at: Date.now(),
    });
    this.router.server._notify();
    /** @type {Record<string, string>} */
    const attrs = { id, to: from };
    if (node.attrs.category === 'peer') attrs.type = 'peer_msg';
    else if (fromMe) {
      attrs.type = 'sender';
      if (node.attrs.recipient) attrs.recipient = node.attrs.recipient;
    }
    this.router.onReceipt(this.endpoint, { tag: 'receipt', attrs });
  }

  /**
   * Send a text from this phone into `to` (a phone-number or LID user jid, or a bare number).
   * Every device of the target account gets its own Signal copy (a `pkmsg` the first time, on a
   * session built from the bundle the router pops), the phone's own companions get a DSM copy.
   * `fresh` forgets the phone's sessions with the target devices first, as a reinstalled phone would: the
   * next message is a pkmsg on a new session, and the receiver's libsignal closes its open one.
   * @param {string} to @param {string} text @param {{ id?: string, fresh?: boolean }} [opts]
   * @returns {Promise<{ id: string, to: string, devices: string[] }>}
   */
  async send(to, text, opts = {}) {
    const target = this.router.resolveAccount(to);
    if (!target) throw new Error(`sendFromPhone: ${to} is not a registered account`);
    const { phone: dest, mode } = target;
    const destJid = mode === 'lid' ? `${dest.lidUser}@lid` : `${dest.number}@s.whatsapp.net`;
    const me = this.endpoint;
    const id = opts.id ?? generateMessageIDV2(`${this.number}@s.whatsapp.net`);
    const message = { conversation: text };
    const recipients = [
      ...this.router.accountEndpoints(dest),
      ...(dest === me.phone ? [] : this.router.accountEndpoints(me.phone)),
    ].filter((ep) => ep !== me);
    /** @type {BinaryNode[]} */
    const tos = [];
    for (const ep of recipients) {
      const addr = this.address(ep);
      if (opts.fresh) this.sessions.delete(addr.toString());
      if (!(await this.storage.loadSession(addr.toString()))?.haveOpenSession()) {
        const bundle = this.router.popBundle(ep);
        if (!bundle) continue; // like Baileys: a device without keys is left out
        await new libsignal.SessionBuilder(this.storage, addr).initOutgoing({
          registrationId: bundle.registrationId,
          identityKey: signalPub(bundle.identity),
          signedPreKey: {
            keyId: bundle.signedPreKey.id,
            publicKey: signalPub(bundle.signedPreKey.public),
            signature: bundle.signedPreKey.signature,
          },
          preKey: bundle.preKey ? { keyId: bundle.preKey.id, publicKey: signalPub(bundle.preKey.public) } : undefined,
        });
      }
      const own = ep.phone === me.phone;
      const bytes = encodeWAMessage(own ? { deviceSentMessage: { destinationJid: destJid, message } } : message);
      const { type, body } = await new libsignal.SessionCipher(this.storage, addr).encrypt(bytes);
      tos.push({
        tag: 'to',
        attrs: { jid: ep.jid(mode) },
        content: [
          { tag: 'enc', attrs: { v: '2', type: type === 3 ? 'pkmsg' : 'msg' }, content: Buffer.from(body, 'binary') },
        ],
      });
    }
    this.router.onMessage(
      me,
      {
        tag: 'message',
        attrs: { id, to: destJid, type: 'text' },
        content: [{ tag: 'participants', attrs: {}, content: tos }],
      },
      null,
    );
    return { id, to: destJid, devices: tos.map((t) => t.attrs.jid ?? '') };
  }

  /** send a `read` receipt for messages this phone received. @param {string[]} ids */
  read(ids) {
    let n = 0;
    for (const id of ids) {
      const m = this.received.find((r) => r.id === id);
      if (!m) continue;
      this.router.onReceipt(this.endpoint, {
        tag: 'receipt',
        attrs: { id, to: m.from, type: 'read', t: String(Math.floor(Date.now() / 1000)) },
      });
      n++;
    }
    return n;
  }

  /** @param {Record<string, string>} attrs */
  onAck(attrs) {
    this.acks.push({ id: attrs.id ?? '', error: attrs.error, at: Date.now() });
    this.router.server._notify();
  }

  /** @param {BinaryNode} node */
  onReceipt(node) {
    const items = getBinaryNodeChild(node, 'list');
    const ids = [node.attrs.id ?? ''];
    if (Array.isArray(items?.content)) for (const i of items.content) ids.push(i.attrs.id ?? '');
    this.receipts.push({ id: ids[0] ?? '', from: node.attrs.from ?? '', type: node.attrs.type, ids, at: Date.now() });
    this.router.server._notify();
  }
}
