/**
 * Message routing through the loopback test server, driven by REAL Baileys rc14 clients in-process:
 * Signal-encrypted texts between two paired sessions, offline replay, the simulated phones, and the
 * messaging faults, each observed the way Baileys reports it.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
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
// phones without companions (known numbers); each is used by one test, so that its first message to
// a session is a pkmsg
const CAROL = '15552220003';
const DAVE = '15552220004';
const ERIN = '15552220005';
const FRANK = '15552220006';
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
/**
 * the furthest status Baileys reported for an own message: receipts arriving within the event
 * buffer's window are folded into the own `append` upsert (messaging-notes.md), so look at both
 */
const statusOf = (s: Session, id: string) =>
  Math.max(
    -1,
    ...statusesOf(s, id).map(Number),
    ...s.upserts.filter((u) => u.msg.key.id === id && u.msg.key.fromMe).map((u) => Number(u.msg.status ?? -1)),
  );
const DELIVERED = proto.WebMessageInfo.Status.DELIVERY_ACK;
/** receipts the server forwarded to a device for a message, from a given device */
const receiptsTo = (device: string, id: string, from?: string) =>
  server.messageLog({ device, dir: 'out', tag: 'receipt', id }).filter((e) => !from || e.from === from);
/** message stanzas the server got from a device with that id */
const inbound = (device: string, id: string) =>
  server.messageLog({ device, tag: 'message', dir: 'in', id }).filter((e) => e.device === device);

let alice: Account;
let bob: Account;

beforeAll(async () => {
  server = await startTestServer({ knownNumbers: [CAROL, DAVE, ERIN, FRANK], seed: 'routing-test' });
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(server.rootPublicKey);
  alice = await pair(ALICE, 'Alice');
  bob = await pair(BOB, 'Bob');
}, 60000);

beforeEach(() => {
  // libsignal (the clients' and the simulated phones') narrates every session change, whole records
  // included, on console.info/log/warn; keep the test output readable (restoreMocks undoes this)
  for (const m of ['info', 'log', 'warn'] as const) vi.spyOn(console, m).mockImplementation(() => {});
});

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
    await until(() => receiptsTo(a.jid, id1, b.jid).length && statusOf(a, id1) >= DELIVERED, 'delivery receipt');
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
    await until(() => receiptsTo(b.jid, id2, a.jid).length && statusOf(b, id2) >= DELIVERED, 'delivery receipt');
    expect(a.received(id2).map((u) => textOf(u.msg))).toEqual(['hi alice']);
    expect(ackFor(b, id2)).toBeTruthy();
    // receipted copies leave the queues
    await until(() => server.queued(b.jid).length === 0 && server.queued(a.jid).length === 0, 'queues empty');
    expect(a.errors.filter((e) => e.level >= 50)).toEqual([]);
    expect(b.errors.filter((e) => e.level >= 50)).toEqual([]);
  }, 30000);
});

describe('offline replay', () => {
  it('a message for a disconnected device waits in its queue, comes as append at login, leaves on the receipt', async () => {
    const a = await open(alice);
    const b0 = await open(bob);
    await b0.end();
    await server.waitFor(() => !server.devices().find((d) => d.jid === bob.jid)?.online);
    const id = await a.send(`${BOB}@s.whatsapp.net`, 'while you were away');
    await until(() => ackFor(a, id), 'server ack');
    expect(server.queued(bob.jid).map((q) => [q.kind, q.id, q.pushes])).toEqual([['message', id, 0]]);
    // (Bob's phone, always online, has receipted already; his companion has not)
    expect(receiptsTo(a.jid, id, bob.jid)).toEqual([]);

    const b = await open(bob);
    await until(() => b.received(id).length, 'the backlog');
    expect(b.received(id).map((u) => [u.type, textOf(u.msg)])).toEqual([['append', 'while you were away']]);
    await until(() => server.queued(bob.jid).length === 0, 'queue empty');
    const out = server.messageLog({ device: bob.jid, dir: 'out', tag: 'message', id });
    expect(out.map((e) => e.offline)).toEqual([true]);
    const receipt = server.messageLog({ device: bob.jid, dir: 'in', tag: 'receipt', id })[0];
    expect(receipt && out[0] && receipt.seq > out[0].seq).toBe(true);
    await until(() => receiptsTo(a.jid, id, bob.jid).length, "the companion's receipt, forwarded");
  }, 30000);
});

describe('simulated phone', () => {
  it('phone → session and session → phone', async () => {
    const a = await open(alice);
    const { id, devices } = await server.sendFromPhone(CAROL, ALICE, 'hi from carol');
    expect(devices).toEqual(expect.arrayContaining([a.jid, `${ALICE}@s.whatsapp.net`]));
    await until(() => a.received(id).length, 'alice to receive');
    expect(a.received(id).map((u) => [u.type, textOf(u.msg), jidNormalizedUser(u.msg.key.remoteJid!)])).toEqual([
      ['notify', 'hi from carol', `${CAROL}@s.whatsapp.net`],
    ]);
    await until(() => server.phoneReceipts(CAROL).find((r) => r.id === id && r.from === a.jid), "alice's receipt");
    expect(server.phoneAcks(CAROL).find((x) => x.id === id)?.error).toBeUndefined();

    const back = await a.send(`${CAROL}@s.whatsapp.net`, 'hi carol');
    const got = await until(() => server.phoneMessages(CAROL).find((m) => m.id === back), 'carol to decrypt');
    expect(got).toMatchObject({ text: 'hi carol', fromMe: false, chat: `${ALICE}@s.whatsapp.net` });
    await until(() => statusOf(a, back) >= DELIVERED, 'phone receipt');
    expect(server.phoneRead(CAROL, [back])).toBe(1);
    await until(() => statusOf(a, back) >= proto.WebMessageInfo.Status.READ, 'read receipt');
    expect(server.phoneFailures(CAROL)).toEqual([]);
  }, 30000);
});

describe('faults', () => {
  it.each([463, 479])(
    'ack error %i → ERROR status with the code, nothing routed',
    async (code) => {
      const a = await open(alice);
      const b = await open(bob);
      server.failNextAck(alice.jid, { code });
      const id = await a.send(`${BOB}@s.whatsapp.net`, `refused ${code}`);
      const upd = await until(
        () => a.updates.find((u) => u.key.id === id && u.update.status === proto.WebMessageInfo.Status.ERROR),
        'error update',
      );
      // 463 doubles as Baileys' SenderReachoutTimelocked code (lib/Socket/messages-recv.js handleBadAck)
      expect(upd.update.messageStubParameters).toEqual(
        code === 463 ? ['463', 'Your account has been restricted'] : [String(code)],
      );
      expect(ackFor(a, id)?.attrs.error).toBe(String(code));
      expect(inbound(a.jid, id).map((e) => [e.outcome, e.targets])).toEqual([['ack-error', []]]);
      // the next message goes through: bob sees only that one
      const ok = await a.send(`${BOB}@s.whatsapp.net`, 'accepted');
      await until(() => b.received(ok).length, 'next message');
      expect(b.received(id)).toEqual([]);
    },
    30000,
  );

  it('socket dropped after the message was read, before the ack', async () => {
    const a = await open(alice);
    const b = await open(bob);
    server.dropBeforeAck(alice.jid);
    const id = await a.send(`${BOB}@s.whatsapp.net`, 'no ack for this');
    expect(await until(() => a.closed(), 'close')).toBe(428);
    expect(ackFor(a, id)).toBeUndefined();
    expect(inbound(a.jid, id).map((e) => e.outcome)).toEqual(['dropped-before-ack']);
    // the server had stored the copies: the recipient gets it anyway
    await until(() => b.received(id).length, 'bob to receive');
  }, 30000);

  it('the same pkmsg delivered twice → nacked 487, one upsert', async () => {
    const a = await open(alice);
    server.duplicateNext(alice.jid);
    const { id } = await server.sendFromPhone(DAVE, ALICE, 'only once');
    await until(
      () => server.messageLog({ device: alice.jid, dir: 'in', tag: 'ack', id }).find((e) => e.error === '487'),
      'the nack of the second copy',
    );
    expect(server.messageLog({ device: alice.jid, dir: 'out', tag: 'message', id })).toHaveLength(2);
    await until(() => a.received(id).length, 'the upsert');
    expect(a.received(id).map((u) => textOf(u.msg))).toEqual(['only once']);
  }, 30000);

  it('the same stanza again after a reconnect → nacked, no second upsert', async () => {
    const a = await open(alice);
    server.duplicateNext(alice.jid, { mode: 'after-reconnect' });
    const { id } = await server.sendFromPhone(ERIN, ALICE, 'seen before');
    await until(() => server.phoneReceipts(ERIN).find((r) => r.id === id && r.from === a.jid), 'the receipt');
    expect(server.queued(alice.jid).map((q) => q.id)).toEqual([id]); // kept past its receipt
    expect(a.received(id)).toHaveLength(1);
    await a.end();
    const a2 = await open(alice);
    await until(
      () => server.messageLog({ device: alice.jid, dir: 'in', tag: 'ack', id }).find((e) => e.error),
      'the nack of the replayed copy',
    );
    const out = server.messageLog({ device: alice.jid, dir: 'out', tag: 'message', id });
    expect(out.map((e) => e.offline)).toEqual([false, true]);
    expect(a2.received(id)).toEqual([]);
    await until(() => server.queued(alice.jid).length === 0, 'queue empty after the nack');
  }, 30000);

  it('receipts held back reach the sender only when released', async () => {
    const a = await open(alice);
    const b = await open(bob);
    server.holdReceipts(BOB); // every device of Bob's, his phone included
    const id = await a.send(`${BOB}@s.whatsapp.net`, 'hold my receipt');
    await until(() => server.messageLog({ device: bob.jid, dir: 'in', tag: 'receipt', id }).length, "bob's receipt");
    await until(
      () => server.messageLog({ device: `${BOB}:0@s.whatsapp.net`, dir: 'in', tag: 'receipt', id }).length,
      "bob's phone's receipt",
    );
    await until(() => b.received(id).length, 'bob to receive');
    expect(receiptsTo(a.jid, id).filter((e) => e.from?.startsWith(BOB))).toEqual([]);
    expect(server.releaseReceipts(BOB)).toBe(2);
    await until(() => receiptsTo(a.jid, id, bob.jid).length && statusOf(a, id) >= DELIVERED, 'released receipt');
  }, 30000);

  it('corrupted ciphertext → retry receipt → the sender re-sends (getMessage) → decrypted', async () => {
    const a = await open(alice);
    const b = await open(bob);
    server.corruptNext(bob.jid);
    const id = await a.send(`${BOB}@s.whatsapp.net`, 'try again');
    await until(
      () => server.messageLog({ device: bob.jid, dir: 'in', tag: 'receipt', id }).find((e) => e.type === 'retry'),
      'retry receipt',
    );
    await until(() => b.received(id).find((u) => textOf(u.msg) === 'try again'), 'the re-sent copy', 15000);
    // the first copy became an undecryptable stub; the sender sent the id a second time
    expect(b.received(id).some((u) => u.msg.messageStubType === proto.WebMessageInfo.StubType.CIPHERTEXT)).toBe(true);
    expect(inbound(a.jid, id).length).toBe(2);
  }, 30000);

  it('phone-number addressing to a LID-migrated contact → 463; the LID works', async () => {
    const a = await open(alice);
    const b = await open(bob);
    server.setLidMigrated(BOB);
    const id = await a.send(`${BOB}@s.whatsapp.net`, 'by number');
    const upd = await until(
      () => a.updates.find((u) => u.key.id === id && u.update.status === proto.WebMessageInfo.Status.ERROR),
      'error update',
    );
    expect(upd.update.messageStubParameters).toEqual(['463', 'Your account has been restricted']);
    expect(inbound(a.jid, id)[0]?.outcome).toBe('lid-migrated');
    const lid = await a.sock.signalRepository.lidMapping.getLIDForPN(`${BOB}@s.whatsapp.net`);
    expect(lid).toBe(
      `${
        server
          .devices()
          .find((d) => d.jid === bob.jid)!
          .lid.split(':')[0]
      }@lid`,
    );
    const ok = await a.send(lid!, 'by lid');
    await until(() => b.received(ok).length, 'bob to receive by LID');
    expect(textOf(b.received(ok)[0]!.msg)).toBe('by lid');
  }, 30000);
});

describe('admin API (server in another process)', () => {
  it('phone send / wait-message / message log / faults over HTTP', async () => {
    const admin = await startAdminServer(server);
    const post = async (route: string, body: unknown) => {
      const r = await fetch(admin.url + route, { method: 'POST', body: JSON.stringify(body) });
      const json = (await r.json()) as unknown;
      if (r.status !== 200) throw new Error(`${route}: ${JSON.stringify(json)}`);
      return json as Record<string, unknown> & Array<Record<string, unknown>>;
    };
    try {
      const a = await open(alice);
      const sent = await post('/phone/send', { phone: FRANK, to: `${ALICE}@s.whatsapp.net`, text: 'over http' });
      const id = String(sent.id);
      await until(() => a.received(id).length, 'alice to receive');
      const back = await a.send(`${FRANK}@s.whatsapp.net`, 'answer');
      const got = await post('/phone/wait-message', { phone: FRANK, id: back });
      expect(got).toMatchObject({ text: 'answer', id: back });
      const log = await post('/wait-message-log', { device: alice.jid, tag: 'message', dir: 'in', id: back });
      expect(log).toHaveLength(1);
      await post('/fault/ack-error', { jid: alice.jid, code: 479 });
      const refused = await a.send(`${FRANK}@s.whatsapp.net`, 'refused');
      await until(() => ackFor(a, refused)?.attrs.error === '479', 'error ack');
      expect(Array.isArray(await post('/queued', { jid: alice.jid }))).toBe(true);
      expect((await post('/fault/clear', {})).count).toBe(0);
      await expect(post('/phone/send', { phone: '15550000000', to: ALICE, text: 'x' })).rejects.toThrow(/registered/);
    } finally {
      await admin.close();
    }
  }, 30000);
});
