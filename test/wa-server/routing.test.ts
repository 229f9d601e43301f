/**
 * Message routing through the loopback test server, driven by REAL Baileys rc14 clients in-process:
 * Signal-encrypted texts between two paired sessions, offline replay, the simulated phones, and the
 * messaging faults, each observed the way Baileys reports it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as baileys from '@whiskeysockets/baileys';
import makeWASocket, {
  WA_CERT_DETAILS,
  generateMessageIDV2,
  jidNormalizedUser,
  proto,
  useMultiFileAuthState,
} from '@whiskeysockets/baileys';
import type { BinaryNode, WAMessage, WAMessageUpdate } from '@whiskeysockets/baileys';
import pino from 'pino';
import { startTestServer, type TestServer } from './server.js';
import { startAdminServer } from './admin.js';
import { pairDevice } from '../support/pair-device.js';

type Sock = ReturnType<typeof makeWASocket>;
interface LogLine {
  level: number;
  msg?: string;
}

const ALICE = '15552220001';
const BOB = '15552220002';
const CAROL = '15552220003'; // a phone without companions (known number)
const silent = pino({ level: 'silent' });

let server: TestServer;
const tempDirs: string[] = [];
const live = new Set<Session>();
const originalRoot = WA_CERT_DETAILS.PUBLIC_KEY;

/** polls until fn() returns a truthy value */
async function until<T>(fn: () => T | undefined | false | null, what: string, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Session {
  sock: Sock;
  jid: string;
  upserts: Array<{ type: string; msg: WAMessage }>;
  updates: WAMessageUpdate[];
  acks: BinaryNode[];
  errors: LogLine[];
  /** what this session sent, for getMessage (retry receipts) */
  sent: Map<string, proto.IMessage>;
  closed: () => number | undefined;
  end(): Promise<void>;
  /** texts upserted from others with this id */
  received(id: string): Array<{ type: string; msg: WAMessage }>;
  send(to: string, text: string): Promise<string>;
}

interface Account {
  dir: string;
  jid: string;
}

async function pair(number: string, name: string): Promise<Account> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wa-routing-test-'));
  tempDirs.push(dir);
  const auth = await useMultiFileAuthState(dir);
  const jid = await pairDevice({
    baileys,
    auth,
    url: server.url,
    logger: silent,
    scan: (qr) => server.scanQr(qr, { number, name }),
  });
  return { dir, jid };
}

async function open(account: Account): Promise<Session> {
  const { state, saveCreds } = await useMultiFileAuthState(account.dir);
  const errors: LogLine[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        errors.push(JSON.parse(line) as LogLine);
      },
    },
  );
  const sent = new Map<string, proto.IMessage>();
  const sock = makeWASocket({
    auth: state,
    logger,
    waWebSocketUrl: server.url,
    // online, so that receipts are delivery receipts, not `inactive` (lib/Socket/messages-recv.js)
    markOnlineOnConnect: true,
    // no history sync is coming: do not hold events for 20 s (lib/Socket/chats.js AwaitingInitialSync)
    shouldSyncHistoryMessage: () => false,
    getMessage: async (key) => (key.id ? sent.get(key.id) : undefined),
    keepAliveIntervalMs: 30000,
    connectTimeoutMs: 10000,
  });
  const upserts: Session['upserts'] = [];
  const updates: WAMessageUpdate[] = [];
  const acks: BinaryNode[] = [];
  let closeCode: number | undefined;
  let isOpen = false;
  let pending = false;
  sock.ev.on('creds.update', saveCreds);
  sock.ev.on('messages.upsert', ({ messages, type }) => {
    for (const msg of messages) upserts.push({ type, msg });
  });
  sock.ev.on('messages.update', (u) => updates.push(...u));
  sock.ws.on('CB:ack,class:message', (node: BinaryNode) => acks.push(node));
  sock.ev.on('connection.update', (u) => {
    if (u.connection === 'open') isOpen = true;
    if (u.receivedPendingNotifications) pending = true;
    if (u.connection === 'close') {
      closeCode =
        (u.lastDisconnect?.error as { output?: { statusCode?: number } } | undefined)?.output?.statusCode ?? -1;
    }
  });
  const session: Session = {
    sock,
    jid: account.jid,
    upserts,
    updates,
    acks,
    errors,
    sent,
    closed: () => closeCode,
    async end() {
      live.delete(session);
      await Promise.race([sock.end(undefined), new Promise((r) => setTimeout(r, 2000))]);
    },
    received: (id) => upserts.filter((u) => u.msg.key.id === id && !u.msg.key.fromMe),
    async send(to, text) {
      // id first, stored before the send: a retry receipt may ask before sendMessage resolves
      const id = generateMessageIDV2(sock.user?.id);
      sent.set(id, { conversation: text });
      await sock.sendMessage(to, { text }, { messageId: id });
      return id;
    },
  };
  live.add(session);
  await until(() => isOpen && pending, `${account.jid} to open`, 15000);
  return session;
}

const textOf = (m: WAMessage) => m.message?.conversation ?? m.message?.extendedTextMessage?.text;
const ackFor = (s: Session, id: string) => s.acks.find((a) => a.attrs.id === id);
const statusesOf = (s: Session, id: string) =>
  s.updates.filter((u) => u.key.id === id && u.update.status != null).map((u) => u.update.status);
/** message stanzas the server got from a device with that id */
const inbound = (device: string, id: string) =>
  server.messageLog({ device, tag: 'message', dir: 'in', id }).filter((e) => e.device === device);

let alice: Account;
let bob: Account;

beforeAll(async () => {
  server = await startTestServer({ knownNumbers: [CAROL], seed: 'routing-test' });
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(server.rootPublicKey);
  alice = await pair(ALICE, 'Alice');
  bob = await pair(BOB, 'Bob');
}, 60000);

afterEach(async () => {
  for (const s of [...live]) await s.end();
  server.clearFaults();
});

afterAll(async () => {
  await server?.close();
  WA_CERT_DETAILS.PUBLIC_KEY = originalRoot;
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('routing between two sessions', () => {
  it('a text goes both ways: one upsert each, server ack, then a delivery receipt', async () => {
    const a = await open(alice);
    const b = await open(bob);
    expect(server.devices().find((d) => d.jid === alice.jid)?.preKeysAvailable).toBeGreaterThan(700);

    const id1 = await a.send(`${BOB}@s.whatsapp.net`, 'hello bob');
    await until(() => b.received(id1).length, 'bob to receive');
    await until(() => statusesOf(a, id1).includes(proto.WebMessageInfo.Status.DELIVERY_ACK), 'delivery receipt');
    expect(ackFor(a, id1)?.attrs.error).toBeUndefined();
    expect(b.received(id1).map((u) => [u.type, textOf(u.msg), jidNormalizedUser(u.msg.key.remoteJid!)])).toEqual([
      ['notify', 'hello bob', `${ALICE}@s.whatsapp.net`],
    ]);
    // the first message of a socket to a new device is a pkmsg; the sender's copy reached the server once
    const [stanza] = inbound(a.jid, id1);
    expect(stanza?.encTypes).toContain('pkmsg');
    expect(stanza?.targets).toEqual(
      expect.arrayContaining([`${BOB}@s.whatsapp.net`, b.jid, `${ALICE}@s.whatsapp.net`]),
    );
    // the phones decrypted their copies too (Bob's phone the text, Alice's phone the DSM copy)
    await until(() => server.phoneMessages(BOB).find((m) => m.id === id1), "bob's phone");
    await until(() => server.phoneMessages(ALICE).find((m) => m.id === id1 && m.fromMe), "alice's phone (DSM)");
    expect(server.phoneMessages(ALICE).find((m) => m.id === id1)).toMatchObject({
      text: 'hello bob',
      chat: `${BOB}@s.whatsapp.net`,
    });

    const id2 = await b.send(`${ALICE}@s.whatsapp.net`, 'hi alice');
    await until(() => a.received(id2).length, 'alice to receive');
    await until(() => statusesOf(b, id2).includes(proto.WebMessageInfo.Status.DELIVERY_ACK), 'delivery receipt');
    expect(a.received(id2).map((u) => textOf(u.msg))).toEqual(['hi alice']);
    expect(ackFor(b, id2)).toBeTruthy();
    // receipted copies leave the queues
    await until(() => server.queued(b.jid).length === 0 && server.queued(a.jid).length === 0, 'queues empty');
    expect(a.errors.filter((e) => e.level >= 50)).toEqual([]);
    expect(b.errors.filter((e) => e.level >= 50)).toEqual([]);
  }, 30000);
});
