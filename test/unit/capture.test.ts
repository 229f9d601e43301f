/**
 * The WAMessage → stored message mapping (src/session/capture.ts) for every kind, on WAMessages built with
 * Baileys' own proto, and MessageCapture's wiring on a fake socket over a real SQLite store: stored once,
 * `append` as replay, the buffer flushed on close, failed writes retried, the backlog awaited.
 */
import { EventEmitter } from 'node:events';
import * as baileys from '@whiskeysockets/baileys';
import { proto, type WAMessage, type WASocket } from '@whiskeysockets/baileys';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MessageCapture, toCaptured } from '../../src/session/capture.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { IncomingMessage } from '../../src/store/types.js';

const PEER = '15550001111@s.whatsapp.net';
const OWN = '15559990000:3@s.whatsapp.net';
const silent = pino({ level: 'silent' });

const wa = (message: proto.IMessage | null, extra: Partial<proto.IWebMessageInfo> = {}): WAMessage =>
  proto.WebMessageInfo.fromObject({
    key: { remoteJid: PEER, fromMe: false, id: 'ID1' },
    message,
    messageTimestamp: 1_700_000_000,
    pushName: 'Ada',
    ...extra,
  }) as WAMessage;

const mapped = (msg: WAMessage): IncomingMessage => {
  const captured = toCaptured(msg, OWN, baileys);
  if (captured?.type !== 'message') throw new Error(`not a message: ${JSON.stringify(captured)}`);
  return captured.message;
};

describe('toCaptured', () => {
  it('maps a text message to the event fields, with the whole WAMessage as raw JSON', () => {
    const m = mapped(wa({ conversation: 'hello' }));
    expect(m).toEqual({
      id: 'ID1',
      chat: PEER,
      from: PEER,
      fromMe: false,
      name: 'Ada',
      sentAt: '2023-11-14T22:13:20.000Z',
      kind: 'text',
      text: 'hello',
      raw: expect.any(String) as unknown,
    });
    expect(JSON.parse(m.raw)).toMatchObject({
      key: { id: 'ID1', remoteJid: PEER },
      message: { conversation: 'hello' },
    });
    expect(mapped(wa({ extendedTextMessage: { text: 'with a link https://x' } }))).toMatchObject({
      kind: 'text',
      text: 'with a link https://x',
    });
  });

  it.each([
    ['image', { imageMessage: { caption: 'a cat', mimetype: 'image/jpeg' } }, 'a cat'],
    ['video', { videoMessage: { caption: 'a clip' } }, 'a clip'],
    ['video', { ptvMessage: {} }, null],
    ['audio', { audioMessage: { ptt: true, seconds: 3 } }, null],
    ['document', { documentMessage: { fileName: 'a.pdf', caption: 'the doc' } }, 'the doc'],
    ['document', { documentWithCaptionMessage: { message: { documentMessage: { caption: 'wrapped' } } } }, 'wrapped'],
    ['sticker', { stickerMessage: { mimetype: 'image/webp' } }, null],
    ['location', { locationMessage: { degreesLatitude: 1, degreesLongitude: 2 } }, null],
    ['location', { liveLocationMessage: { degreesLatitude: 1 } }, null],
    ['contact', { contactMessage: { displayName: 'Bob', vcard: 'BEGIN:VCARD' } }, null],
    ['contact', { contactsArrayMessage: { contacts: [] } }, null],
    ['reaction', { reactionMessage: { key: { id: 'X' }, text: '👍' } }, '👍'],
    ['other', { pollCreationMessage: { name: 'lunch?' } }, null],
    ['text', { ephemeralMessage: { message: { conversation: 'disappearing' } } }, 'disappearing'],
    ['image', { viewOnceMessageV2: { message: { imageMessage: { caption: 'once' } } } }, 'once'],
    ['other', { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: { id: 'X' } } }, null],
  ] as Array<[string, proto.IMessage, string | null]>)('maps %s content (%j)', (kind, message, text) => {
    expect(mapped(wa(message))).toMatchObject({ kind, text });
  });

  it('keeps Buffers in raw as BufferJSON writes them', () => {
    const msg = wa({ imageMessage: { caption: 'c', fileSha256: Buffer.from([1, 2, 3]) } });
    const raw = JSON.parse(mapped(msg).raw) as { message: { imageMessage: { fileSha256: unknown } } };
    // protobufjs writes bytes as base64 (its toJSON); either way, nothing is lost.
    expect(raw.message.imageMessage.fileSha256).toBe('AQID');
  });

  it('names the sender: the participant in a group, the account itself for its own messages', () => {
    const group = mapped(
      wa(
        { conversation: 'hi all' },
        { key: { remoteJid: '123@g.us', id: 'G', participant: '15550002222:5@s.whatsapp.net' } },
      ),
    );
    expect(group).toMatchObject({ chat: '123@g.us', from: '15550002222@s.whatsapp.net', fromMe: false });
    const own = mapped(wa({ conversation: 'from my phone' }, { key: { remoteJid: PEER, id: 'O', fromMe: true } }));
    expect(own).toMatchObject({ chat: PEER, from: '15559990000@s.whatsapp.net', fromMe: true });
  });

  it('turns a CIPHERTEXT stub into an undecryptable event', () => {
    const stub = wa(null, {
      messageStubType: proto.WebMessageInfo.StubType.CIPHERTEXT,
      messageStubParameters: ['Bad MAC'],
    });
    expect(toCaptured(stub, OWN, baileys)).toEqual({ type: 'undecryptable', id: 'ID1', chat: PEER, from: PEER });
  });

  it('skips protocol and system messages without content of their own', () => {
    const skipped: Array<proto.IMessage | null> = [
      { senderKeyDistributionMessage: { groupId: '123@g.us' } },
      { messageContextInfo: {} },
      { protocolMessage: { type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION } },
      { protocolMessage: { type: proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_SHARE } },
      null,
    ];
    for (const message of skipped)
      expect(toCaptured(wa(message), OWN, baileys), JSON.stringify(message)).toBeUndefined();
    expect(
      toCaptured(wa(null, { messageStubType: proto.WebMessageInfo.StubType.GROUP_CREATE }), OWN, baileys),
    ).toBeUndefined();
    expect(toCaptured(wa({ conversation: 'x' }, { key: { remoteJid: PEER } }), OWN, baileys)).toBeUndefined();
  });
});

/** Just enough of a WASocket: an event emitter with Baileys' flush(), and the account's creds. */
function fakeSocket(): { socket: WASocket; ev: EventEmitter; buffered: Array<() => void> } {
  const ev = new EventEmitter();
  const buffered: Array<() => void> = [];
  const socket = {
    ev: Object.assign(ev, { flush: () => buffered.splice(0).forEach((emit) => emit()) }),
    authState: { creds: { me: { id: OWN } } },
  } as unknown as WASocket;
  return { socket, ev, buffered };
}

describe('MessageCapture', () => {
  it('stores notify and append upserts once each, append as replay, and records connection events', async () => {
    const store = new SqliteStore(':memory:');
    const { socket, ev } = fakeSocket();
    const counted: number[] = [];
    const capture = new MessageCapture(socket, store, 'bot', silent, baileys, { onStored: (n) => counted.push(n) });
    ev.emit('connection.update', { connection: 'open' });
    ev.emit('messages.upsert', {
      type: 'notify',
      messages: [wa({ conversation: 'live' }, { key: { remoteJid: PEER, id: 'L' } })],
    });
    ev.emit('messages.upsert', {
      type: 'append',
      messages: [
        wa({ conversation: 'backlog' }, { key: { remoteJid: PEER, id: 'B' } }),
        wa({ conversation: 'live' }, { key: { remoteJid: PEER, id: 'L' } }), // delivered again
        wa({ senderKeyDistributionMessage: {} }, { key: { remoteJid: PEER, id: 'S' } }),
      ],
    });
    expect(await capture.settle(5000)).toBe(true);
    const events = await store.readEvents();
    expect(events.map((e) => [e.type, e.type === 'message' ? `${e.id}:${e.text}:${e.replay}` : null])).toEqual([
      ['connection', null],
      ['message', 'L:live:false'],
      ['message', 'B:backlog:true'],
    ]);
    expect(counted).toEqual([1, 1]);
    await store.close();
  });

  it('flushes the event buffer when the socket closes, so buffered upserts are stored, not destroyed', async () => {
    const store = new SqliteStore(':memory:');
    const { socket, ev, buffered } = fakeSocket();
    const capture = new MessageCapture(socket, store, 'bot', silent, baileys);
    buffered.push(() => ev.emit('messages.upsert', { type: 'notify', messages: [wa({ conversation: 'held' })] }));
    ev.emit('connection.update', { connection: 'close', lastDisconnect: { error: undefined, date: new Date() } });
    await capture.finished; // closed, and every write it started is done
    expect((await store.readEvents()).map((e) => (e.type === 'message' ? e.text : e.type))).toEqual([
      'held',
      'connection',
    ]);
    await store.close();
  });

  it('stores messages that arrive while a write is under way together, in one transaction, in arrival order', async () => {
    const store = new SqliteStore(':memory:');
    const writes: number[] = [];
    const original = store.storeIncoming.bind(store);
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    store.storeIncoming = async (session, messages, options) => {
      writes.push(messages.length);
      if (writes.length === 1) await held; // a slow first write: the rest queue up behind it
      return original(session, messages, options);
    };
    const { socket, ev } = fakeSocket();
    const capture = new MessageCapture(socket, store, 'bot', silent, baileys);
    const live = (id: string) => ({
      type: 'notify',
      messages: [wa({ conversation: id }, { key: { remoteJid: PEER, id } })],
    });
    ev.emit('messages.upsert', live('m1'));
    await new Promise((resolve) => setTimeout(resolve, 20)); // m1's write has started
    for (const id of ['m2', 'm3', 'm4']) ev.emit('messages.upsert', live(id));
    ev.emit('messages.upsert', {
      type: 'append',
      messages: [wa({ conversation: 'old' }, { key: { remoteJid: PEER, id: 'o1' } })],
    });
    ev.emit('messages.upsert', live('m5'));
    release!();
    expect(await capture.settle(5000)).toBe(true);
    // m2–m4 in one write; the backlog message in its own (replay differs); m5 after it, in order.
    expect(writes).toEqual([1, 3, 1, 1]);
    const events = await store.readEvents();
    expect(events.map((e) => (e.type === 'message' ? `${e.id}:${e.replay}` : e.type))).toEqual([
      'm1:false',
      'm2:false',
      'm3:false',
      'm4:false',
      'o1:true',
      'm5:false',
    ]);
    await store.close();
  });

  it('retries a failed write instead of dropping the message', async () => {
    const store = new SqliteStore(':memory:');
    let failures = 1;
    const original = store.storeIncoming.bind(store);
    store.storeIncoming = (...args) => (failures-- > 0 ? Promise.reject(new Error('disk full')) : original(...args));
    const { socket, ev } = fakeSocket();
    const capture = new MessageCapture(socket, store, 'bot', silent, baileys);
    ev.emit('messages.upsert', { type: 'notify', messages: [wa({ conversation: 'keep me' })] });
    expect(await capture.settle(5000)).toBe(true);
    expect((await store.readEvents()).map((e) => (e.type === 'message' ? e.text : e.type))).toEqual(['keep me']);
    await store.close();
  });

  it('reports the backlog stored only after the offline notification and its writes', async () => {
    const store = new SqliteStore(':memory:');
    const { socket, ev, buffered } = fakeSocket();
    const capture = new MessageCapture(socket, store, 'bot', silent, baileys);
    expect(await capture.untilBacklogStored(50)).toBe(false);
    ev.emit('messages.upsert', { type: 'append', messages: [wa({ conversation: 'while away' })] });
    // Held by chats.js' AwaitingInitialSync buffer: released by the capture at the offline notification.
    buffered.push(() =>
      ev.emit('messages.upsert', {
        type: 'notify',
        messages: [wa({ conversation: 'just now' }, { key: { remoteJid: PEER, id: 'N' } })],
      }),
    );
    ev.emit('connection.update', { receivedPendingNotifications: true });
    expect(await capture.untilBacklogStored(5000)).toBe(true);
    expect((await store.readEvents()).map((e) => (e.type === 'message' ? e.text : e.type))).toEqual([
      'while away',
      'just now',
    ]);
    await store.close();
  });

  it('keeps an undecryptable stub as its own event, and the message once it arrives decrypted', async () => {
    const store = new SqliteStore(':memory:');
    const { socket, ev } = fakeSocket();
    const capture = new MessageCapture(socket, store, 'bot', silent, baileys);
    ev.emit('messages.upsert', {
      type: 'notify',
      messages: [wa(null, { messageStubType: proto.WebMessageInfo.StubType.CIPHERTEXT })],
    });
    ev.emit('messages.upsert', { type: 'notify', messages: [wa({ conversation: 'second try' })] });
    await capture.settle(5000);
    expect((await store.readEvents()).map((e) => [e.type, 'id' in e ? e.id : null])).toEqual([
      ['undecryptable', 'ID1'],
      ['message', 'ID1'],
    ]);
    await store.close();
  });
});
