// bench:messages — what sending and receiving messages through `wa` costs, against the loopback WhatsApp
// test server, next to what a user would otherwise write: a plain Baileys script on a useMultiFileAuthState
// folder (exported with `wa export`), as mudslide and the Baileys README examples work.
//
//   (a) `wa send` latency, spawn → the row `sent` (the server acked it: the `sent` status event's time in the
//       database) and spawn → exit, p50/p95: (1) delegated to a `wa serve` that owns the session, (2) direct
//       (wa send takes the lease, connects, sends, waits, lingers ~2 s for retry receipts: README "Sending
//       messages"), (3) a plain script: connect, send one message, wait for the server ack, close
//   (b) outbound throughput: M messages queued for one session (the store's enqueueMessage, as `wa send`
//       does) while `wa serve` owns it → all `sent`; against a sendMessage loop on one open socket → all
//       server acks in
//   (c) inbound throughput: the contact's simulated phone (test/wa-server/phone.js) sends K messages into a
//       session `wa serve` holds → all stored (the `message` events' times); against a socket whose
//       messages.upsert handler only counts
//   (d) VmRSS of `wa serve` with R paired sessions, after a settle, before and after messages arrived
//       (spread over the sessions), and (full run) after as many again
//
// One contact (a `--known` number of the test server: a simulated phone that decrypts what it gets and
// answers with delivery receipts) is the recipient of every send and the sender of every inbound message.
// wa's sessions and the plain script's are different linked devices (paired the same way), so neither
// disturbs the other's Signal sessions. Every session had one connection past Baileys' 20 s first-connection
// wait (lib/Socket/chats.js AwaitingInitialSync) before anything is measured, so no side measures that wait.
// The test server runs in its own process (its CPU is counted against neither side).
//
// Prints figures and ratios; never asserts timings (the machine is noisy). Linux only (/proc).
// Usage: npm run bench:messages [-- --quick] [--sends N] [--outbound M] [--inbound K] [--sessions R]
//        [--rss-messages X] [--rounds N] [--rss-rounds N] [--[no-]rss-ttl-wait] [--rss-rate R] [--only a,b,c,d] [--keep] [--cpu-prof (wa serve's V8 profiles, kept in the temp dir)]
//        (or: npm run build && node bench/messages.js …)

import { pairDevice } from '../test/support/pair-device.js';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  benchRun,
  eachLine,
  median,
  PROJECT,
  rssKb,
  runProcess,
  startServer as startServerProcess,
  WA,
  waEnv as waEnvFor,
} from './harness.js';

const { values: opts } = parseArgs({
  allowNegative: true,
  options: {
    quick: { type: 'boolean', default: false },
    sends: { type: 'string' },
    outbound: { type: 'string' },
    inbound: { type: 'string' },
    sessions: { type: 'string' },
    'rss-messages': { type: 'string' },
    rounds: { type: 'string' },
    'rss-rounds': { type: 'string' },
    'rss-ttl-wait': { type: 'boolean' },
    'rss-rate': { type: 'string' },
    'settle-seconds': { type: 'string' },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const QUICK = opts.quick;
const SENDS = Number(opts.sends ?? (QUICK ? 10 : 30));
const OUTBOUND = Number(opts.outbound ?? (QUICK ? 300 : 2000));
const INBOUND = Number(opts.inbound ?? (QUICK ? 1000 : 5000));
const SESSIONS = Number(opts.sessions ?? (QUICK ? 20 : 100));
const RSS_MESSAGES = Number(opts['rss-messages'] ?? (QUICK ? 2000 : 10_000));
/** (b) and (c) run wa and plain alternately this many times each (the medians are reported). */
const ROUNDS = Number(opts.rounds ?? (QUICK ? 1 : 3));
/** (d) measures after this many batches of RSS_MESSAGES: growth that goes on batch after batch is no cache. */
const RSS_ROUNDS = Number(opts['rss-rounds'] ?? (QUICK ? 1 : 2));
/**
 * (d) pushes at most this many messages a second (all sessions together): a rate this daemon keeps up with
 * here, so that (d) measures memory, not a backlog. 0: as fast as the server goes (see the report's note).
 */
const RSS_RATE = Number(opts['rss-rate'] ?? 100);
/** (d) samples once more after Baileys' recent-message cache expired (full run; --no-rss-ttl-wait skips it). */
const RSS_TTL_WAIT = opts['rss-ttl-wait'] ?? !QUICK;
const RECENT_MESSAGE_TTL_MS = 5 * 60 * 1000; // lib/Utils/message-retry-manager.js recentMessagesMap ttl
// 25 s: covers Baileys' 20 s first-connection wait, after which it flushes its buffer and writes creds.
const SETTLE_S = Number(opts['settle-seconds'] ?? 25);
const RSS_SAMPLES = 10; // one a second, the median reported (RSS swings with GC)
const ONLY = new Set((opts.only ?? 'a,b,c,d').split(',').map((s) => s.trim()));
for (const [name, v] of Object.entries({
  SENDS,
  OUTBOUND,
  INBOUND,
  SESSIONS,
  RSS_MESSAGES,
  SETTLE_S,
  ROUNDS,
  RSS_ROUNDS,
}))
  if (!Number.isFinite(v) || v < 1) throw new Error(`bad ${name}: ${v}`);
if (!Number.isFinite(RSS_RATE) || RSS_RATE < 0) throw new Error(`bad --rss-rate: ${RSS_RATE}`);
/** Admin calls in flight while the simulated phone sends (it encrypts one at a time anyway). */
const PUSH_CONCURRENCY = 8;
const PAIR_CONCURRENCY = 5;

const CONTACT = '15550004242'; // the simulated phone every message goes to and comes from
const BOT_WA = '15550004001'; // session `a`, used through wa
const BOT_PLAIN = '15550004002'; // session `p`, used by the plain Baileys scripts (exported folder)
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`;

// ------------------------------------------------------------------------------- processes and cleanup
const RUN = benchRun('wa-bench-messages-', { keep: opts.keep || opts['cpu-prof'] });
const ROOT = RUN.root;
const DB = join(ROOT, 'wa.db');
const RSS_DB = join(ROOT, 'rss.db');
const BASE_ENV = RUN.baseEnv;
// Baileys fires promises it never awaits; when a socket closes under them while pairing in this process
// they reject unhandled. Counted, not fatal.
let benchUnhandled = 0;
process.on('unhandledRejection', () => benchUnhandled++);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const waEnv = (server, db) => waEnvFor(BASE_ENV, server, db);

/** A long-running process (`wa serve`, the listening script) whose JSON lines are kept in a log file. */
class Daemon {
  constructor(name, args, env) {
    this.name = name;
    this.logFile = join(ROOT, `${name}.log`);
    this.child = RUN.track(spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] }));
    this.pid = this.child.pid;
    this.opened = new Map(); // session → times it logged 'connection open'
    this.interesting = []; // parsed lines other than per-message chatter
    this.errors = 0;
    this.warnings = new Map();
    this.exited = false;
    this.exit = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    void this.exit.then(() => (this.exited = true));
    eachLine(this.child.stdout, (line) => {
      appendFileSync(this.logFile, line + '\n');
      // Per-message lines ('message sent', 'messages stored') are only written to the file: parsing
      // thousands of them here would take CPU from the processes being measured.
      if (!line.startsWith('{') || line.includes('"messages stored"') || line.includes('"message sent"')) return;
      let parsed;
      try {
        parsed = JSON.parse(line);
      } catch {
        return;
      }
      parsed.at = Date.now();
      this.interesting.push(parsed);
      if (parsed.msg === 'connection open' && typeof parsed.session === 'string')
        this.opened.set(parsed.session, (this.opened.get(parsed.session) ?? 0) + 1);
      if (parsed.level >= 50) this.errors++;
      if (parsed.level === 40) this.warnings.set(parsed.msg, (this.warnings.get(parsed.msg) ?? 0) + 1);
    });
    this.lag = []; // { at, maxMs } a second, from the lag preload
    eachLine(this.child.stderr, (line) => {
      if (line.startsWith('{"lag"')) this.lag.push(JSON.parse(line).lag);
      appendFileSync(this.logFile, line + '\n');
    });
  }

  tail() {
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-25).join('\n');
  }

  /** The largest event-loop delay seen in [from, to] (ms), and how many seconds had one above a second. */
  lagBetween(from, to = Date.now()) {
    const seconds = this.lag.filter((l) => l.at >= from && l.at <= to + 1000);
    return {
      maxMs: Math.max(0, ...seconds.map((l) => l.maxMs)),
      overOneS: seconds.filter((l) => l.maxMs > 1000).length,
    };
  }

  async waitFor(predicate, what, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.interesting.find(predicate);
      if (found) return found;
      if (this.exited) throw new Error(`${this.name} exited before ${what}:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms:\n${this.tail()}`);
      await sleep(50);
    }
  }

  async waitOpen(ids, timeoutMs = 120_000) {
    const deadline = Date.now() + timeoutMs;
    while (ids.some((id) => !this.opened.has(id))) {
      if (this.exited) throw new Error(`${this.name} exited:\n${this.tail()}`);
      if (Date.now() > deadline) {
        const open = ids.filter((id) => this.opened.has(id)).length;
        throw new Error(`${this.name}: ${open}/${ids.length} open after ${timeoutMs} ms:\n${this.tail()}`);
      }
      await sleep(50);
    }
  }

  async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
    if (!this.exited) this.child.kill(signal);
    const result = await Promise.race([this.exit, sleep(timeoutMs).then(() => null)]);
    if (result === null) {
      this.child.kill('SIGKILL');
      await this.exit;
      throw new Error(`${this.name} did not exit within ${timeoutMs} ms of ${signal}`);
    }
    if (signal === 'SIGTERM' && result.code !== 0)
      throw new Error(`${this.name} exited ${result.code}:\n${this.tail()}`);
    return result;
  }
}

/**
 * `wa serve [ids]`; with --cpu-prof each one writes a V8 CPU profile to <temp dir>/profiles on its graceful
 * exit, and a heap snapshot there on SIGUSR2 (sent after each RSS sample of (d)).
 */
const serve = (server, db, name, ids = []) => {
  const dir = join(ROOT, 'profiles', name);
  if (opts['cpu-prof']) mkdirSync(dir, { recursive: true }); // the heap snapshot needs it before the exit
  const prof = opts['cpu-prof']
    ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`]
    : [];
  const env = waEnv(server, db);
  env.NODE_OPTIONS += ` --import ${LAG_PRELOAD}`;
  return new Daemon(name, [...prof, WA, 'serve', ...ids], env);
};

/**
 * Preloaded into every `wa serve`: its event-loop delay, the largest of each second, as a JSON line on
 * stderr (a timer that fires late by more than a lease renewal interval costs the daemon its sessions).
 */
const LAG_PRELOAD = join(ROOT, 'lag.mjs');
writeFileSync(
  LAG_PRELOAD,
  `// generated by bench/messages.js
import { monitorEventLoopDelay } from 'node:perf_hooks';
const delay = monitorEventLoopDelay({ resolution: 20 });
delay.enable();
let last = performance.now();
setInterval(() => {
  // The histogram, and this timer's own lateness: a loop held for seconds shows in both.
  const now = performance.now();
  const maxMs = Math.round(Math.max(delay.max / 1e6, now - last - 1000));
  last = now;
  process.stderr.write(JSON.stringify({ lag: { at: Date.now(), maxMs } }) + '\\n');
  delay.reset();
}, 1000).unref();
`,
);

// ------------------------------------------------------------------------------- the plain Baileys script
/**
 * What a user writes without wa (mudslide works this way): useMultiFileAuthState on a folder, one
 * makeWASocket with the test server's URL (its root trusted) and a silent logger, creds.update → saveCreds.
 * Modes: `send-one` (send, wait for the server ack — `CB:ack,class:message` by id, as src/session/outbox.ts
 * does, since Baileys emits nothing for a clean ack — then close), `send-many` (a sendMessage loop, then wait
 * for every ack), `listen` (count upserted messages from others until TARGET). Times are Date.now(): the
 * same clock as the database's timestamps.
 */
const PLAIN_SCRIPT = join(ROOT, 'plain.mjs');
writeFileSync(
  PLAIN_SCRIPT,
  `// generated by bench/messages.js
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
const require = createRequire(${JSON.stringify(join(PROJECT, 'package.json'))});
const baileys = await import(pathToFileURL(require.resolve('@whiskeysockets/baileys')).href);
const { default: pino } = await import(pathToFileURL(require.resolve('pino')).href);
const { useMultiFileAuthState, WA_CERT_DETAILS } = baileys;
const makeWASocket = baileys.makeWASocket ?? baileys.default;
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(process.env.ROOT_PUBLIC_KEY, 'base64');
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
process.on('unhandledRejection', (err) => emit({ msg: 'unhandledRejection', err: String(err?.message ?? err) }));
const { MODE, FOLDER, TO, COUNT, TARGET } = process.env;

const { state, saveCreds } = await useMultiFileAuthState(FOLDER);
const sock = makeWASocket({ auth: state, logger: pino({ level: 'silent' }), waWebSocketUrl: process.env.WS_URL });
let saving = Promise.resolve();
sock.ev.on('creds.update', () => (saving = saveCreds()));
const acks = new Map();
sock.ws.on('CB:ack,class:message', (node) => acks.get(node.attrs.id)?.(node.attrs.error));
const acked = (id) => new Promise((resolve) => acks.set(id, resolve));
let ending = false;
const close = async () => {
  ending = true;
  await sock.end(undefined);
  await saving;
  process.exit(0);
};

if (MODE === 'listen') {
  let count = 0;
  let warm = false;
  sock.ev.on('messages.upsert', ({ messages }) => {
    for (const m of messages) if (!m.key.fromMe && m.message) count++;
    if (count >= 1 && !warm) {
      warm = true;
      emit({ msg: 'warm', at: Date.now() });
    }
    if (count >= Number(TARGET) && !ending) {
      emit({ msg: 'done', at: Date.now(), count });
      void close();
    }
  });
}
sock.ev.on('connection.update', async ({ connection, lastDisconnect }) => {
  if (connection === 'close') {
    if (ending) return;
    emit({ msg: 'closed', code: lastDisconnect?.error?.output?.statusCode });
    process.exit(3);
  }
  if (connection !== 'open') return;
  emit({ msg: 'open', at: Date.now() });
  if (MODE === 'send-one') {
    const id = baileys.generateMessageIDV2(sock.user?.id);
    const ack = acked(id);
    await sock.sendMessage(TO, { text: 'plain ' + id }, { messageId: id });
    const error = await ack;
    emit({ msg: 'acked', at: Date.now(), id, error });
    await close();
  } else if (MODE === 'send-many') {
    const n = Number(COUNT);
    const pending = [];
    const first = Date.now();
    for (let i = 0; i < n; i++) {
      const id = baileys.generateMessageIDV2(sock.user?.id);
      pending.push(acked(id));
      await sock.sendMessage(TO, { text: 'bulk ' + i }, { messageId: id });
    }
    const written = Date.now();
    const errors = (await Promise.all(pending)).filter(Boolean).length;
    emit({ msg: 'done', first, written, last: Date.now(), errors });
    await close();
  }
});
process.stdin.on('end', () => process.exit(0)); // dies with the benchmark
process.stdin.resume();
`,
);

const plainEnv = (server, folder, extra) => ({
  ...BASE_ENV,
  ROOT_PUBLIC_KEY: server.rootPublicKey,
  WS_URL: server.url,
  FOLDER: folder,
  ...extra,
});

// ------------------------------------------------------------------------------------------------ pairing
/** Pairs `id` with phone `phone` in this process: QR → the phone scans it → 515 → first login (812 pre-keys). */
async function pairAll(server, db, pairs) {
  const baileys = await import('@whiskeysockets/baileys');
  const { default: pino } = await import('pino');
  const { useSqliteAuthState } = await import('../dist/index.js');
  baileys.WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(server.rootPublicKey, 'base64');
  const silent = pino({ level: 'silent' });
  let next = 0;
  const worker = async () => {
    while (next < pairs.length) {
      const [id, phone] = pairs[next++];
      const auth = await useSqliteAuthState(db, id);
      try {
        await pairDevice({
          baileys,
          auth,
          url: server.url,
          logger: silent,
          scan: (qr) => server.post('/scan-qr', { qr, phone: { number: phone, name: id } }),
        });
      } finally {
        await auth.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PAIR_CONCURRENCY, pairs.length) }, worker));
}

// ----------------------------------------------------------------------------------------- database reads
const dbs = new Map();
async function reader(path) {
  if (!dbs.has(path)) {
    const { default: Database } = await import('better-sqlite3');
    dbs.set(path, new Database(path, { readonly: true }));
  }
  return dbs.get(path);
}
const ms = (iso) => Date.parse(iso);

/** When each of the message's status events was first stored (ms): `{ queued, sending, sent, … }`. */
async function statusTimes(session, id) {
  const db = await reader(DB);
  const rows = db
    .prepare(
      `SELECT json_extract(data, '$.status') AS status, at FROM wa_events
       WHERE session_id = ? AND message_id = ? AND type = 'status' ORDER BY cursor`,
    )
    .all(session, id);
  const times = {};
  for (const { status, at } of rows) times[status] ??= ms(at);
  return times;
}

async function lastCursor(path) {
  return (await reader(path)).prepare(`SELECT coalesce(max(cursor), 0) FROM wa_events`).pluck().get();
}

/**
 * Polls until `count()` reaches `target`, failing when it stops moving for `stallMs`. Returns the number
 * of polls it took.
 */
async function untilCount(count, target, what, stallMs = 60_000) {
  let last = -1;
  let movedAt = Date.now();
  for (;;) {
    const n = await count();
    if (n >= target) return n;
    if (n !== last) {
      last = n;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > stallMs) throw new Error(`${what}: stuck at ${n}/${target} for ${stallMs} ms`);
    await sleep(100);
  }
}

// ------------------------------------------------------------------------------------------------- stats
const sorted = (values) => [...values].sort((a, b) => a - b);
/** Nearest-rank percentile. */
const pct = (values, p) => {
  const s = sorted(values);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const fmt = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
const padL = (s, n) => String(s).padStart(n);
const padR = (s, n) => String(s).padEnd(n);
const mb = (kb) => kb / 1024;

/** Pushes `count` messages from the contact's phone, spread over `numbers` in turn, a few calls in flight. */
/**
 * Pushes `count` messages from the contact's phone, spread over `numbers` in turn, a few calls in flight;
 * with `perSecond`, no faster than that (message i leaves at i / perSecond s at the earliest).
 */
async function push(server, numbers, count, label, perSecond = Infinity) {
  let next = 0;
  const t0 = Date.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const due = t0 + (i / perSecond) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      await server.post('/phone/send', { phone: CONTACT, to: numbers[i % numbers.length], text: `${label} ${i}` });
    }
  };
  await Promise.all(Array.from({ length: PUSH_CONCURRENCY }, worker));
}

// ------------------------------------------------------------------------------------------- measurements
/** (a): one `wa send` to the contact with the default --wait sent; its times relative to the spawn. */
async function timedWaSend(server, text) {
  const res = await runProcess(RUN, [WA, 'send', '--json', 'a', `+${CONTACT}`, text], waEnv(server, DB));
  if (res.code !== 0) throw new Error(`wa send exited ${res.code}: ${res.stderr}`);
  const { id } = JSON.parse(res.stdout.trim().split('\n').at(-1));
  const times = await statusTimes('a', id);
  if (times.sent === undefined) throw new Error(`wa send exited 0 but message ${id} has no 'sent' event`);
  return {
    toSent: times.sent - res.startedAt,
    wall: res.exitedAt - res.startedAt,
    // The steps in between: wa send's start-up until the row is written, the owner's claim, the send and ack.
    toQueued: times.queued - res.startedAt,
    claim: times.sending - times.queued,
    send: times.sent - times.sending,
  };
}

async function timedPlainSend(server, folder) {
  let ackedAt;
  const res = await runProcess(
    RUN,
    [PLAIN_SCRIPT],
    plainEnv(server, folder, { MODE: 'send-one', TO: CONTACT_JID }),
    (line, at) => {
      if (line.includes('"acked"')) ackedAt = JSON.parse(line).at ?? at;
    },
  );
  if (res.code !== 0 || ackedAt === undefined)
    throw new Error(`plain script exited ${res.code}: ${res.stdout} ${res.stderr}`);
  return { toSent: ackedAt - res.startedAt, wall: res.exitedAt - res.startedAt };
}

/** A random pause between runs, so that spawns do not lock into phase with the daemon's 200 ms outbox poll. */
const jitter = () => sleep(100 + Math.random() * 300);

async function latency(server, folder) {
  const r = {};
  process.stdout.write(`(a) latency, ${SENDS} sends each: delegated…`);
  const daemon = serve(server, DB, 'serve-latency', ['a']);
  await daemon.waitOpen(['a']);
  for (let i = 0; i < 2; i++) await timedWaSend(server, `warm-up ${i}`);
  r.delegated = [];
  for (let i = 0; i < SENDS; i++) {
    await jitter();
    r.delegated.push(await timedWaSend(server, `delegated ${i}`));
  }
  await daemon.stop();
  process.stdout.write(' direct…');
  r.direct = [];
  await timedWaSend(server, 'warm-up direct');
  for (let i = 0; i < SENDS; i++) {
    await jitter();
    r.direct.push(await timedWaSend(server, `direct ${i}`));
  }
  process.stdout.write(' plain Baileys…');
  await timedPlainSend(server, folder);
  r.plain = [];
  for (let i = 0; i < SENDS; i++) {
    await jitter();
    r.plain.push(await timedPlainSend(server, folder));
  }
  console.log(' done');
  return r;
}

/** (b), wa: M messages queued while `wa serve` owns the session → the last one's `sent` (ms from the first enqueue). */
async function waOutbound(server, round) {
  const daemon = serve(server, DB, `serve-outbound-${round}`, ['a']);
  await daemon.waitOpen(['a']);
  await timedWaSend(server, 'warm-up outbound'); // this socket has sent before, as the plain one has
  const { SqliteStore } = await import('../dist/index.js');
  const { generateMessageIDV2 } = await import('@whiskeysockets/baileys');
  const store = new SqliteStore(DB);
  const jid = (await store.getSession('a'))?.jid ?? undefined;
  const db = await reader(DB);
  const seq0 = db.prepare(`SELECT coalesce(max(seq), 0) FROM wa_outbox`).pluck().get();
  const cursor0 = await lastCursor(DB);
  const t0 = Date.now();
  for (let i = 0; i < OUTBOUND; i++) {
    // What `wa send` delegating to an owner writes: the recipient as parsed, the id chosen up front.
    await store.enqueueMessage('a', { id: generateMessageIDV2(jid), to: CONTACT_JID, text: `bulk ${i}` });
  }
  const enqueueMs = Date.now() - t0;
  await store.close();
  const done = db
    .prepare(
      `SELECT count(*) FROM wa_outbox WHERE session_id = 'a' AND seq > ? AND status IN ('sent', 'delivered', 'read')`,
    )
    .pluck();
  const bad = db
    .prepare(
      `SELECT count(*) FROM wa_outbox WHERE session_id = 'a' AND seq > ? AND status IN ('rejected', 'unknown', 'cancelled')`,
    )
    .pluck();
  await untilCount(
    () => {
      const failed = bad.get(seq0);
      if (failed > 0) throw new Error(`${failed} messages rejected or unknown:\n${daemon.tail()}`);
      return done.get(seq0);
    },
    OUTBOUND,
    'wa serve sending',
  );
  const last = db
    .prepare(
      `SELECT max(at) FROM wa_events WHERE cursor > ? AND session_id = 'a' AND type = 'status'
         AND json_extract(data, '$.status') = 'sent'`,
    )
    .pluck()
    .get(cursor0);
  await daemon.stop();
  return { ms: ms(last) - t0, enqueueMs, errors: daemon.errors };
}

/** (b), plain: a sendMessage loop on one open socket → the last server ack (ms from the first sendMessage). */
async function plainOutbound(server, folder) {
  let result;
  const res = await runProcess(
    RUN,
    [PLAIN_SCRIPT],
    plainEnv(server, folder, { MODE: 'send-many', TO: CONTACT_JID, COUNT: String(OUTBOUND) }),
    (line) => {
      if (line.includes('"done"')) result = JSON.parse(line);
    },
  );
  if (res.code !== 0 || !result) throw new Error(`plain send-many exited ${res.code}: ${res.stdout} ${res.stderr}`);
  return { ms: result.last - result.first, writeMs: result.written - result.first, errors: result.errors };
}

/** (c), wa: K messages pushed into the session `wa serve` holds → the last one's `message` event (ms from the first push). */
async function waInbound(server, round) {
  const daemon = serve(server, DB, `serve-inbound-${round}`, ['a']);
  await daemon.waitOpen(['a']);
  const db = await reader(DB);
  const messagesAfter = db.prepare(
    `SELECT count(*), max(at) FROM wa_events WHERE cursor > ? AND session_id = 'a' AND type = 'message'`,
  );
  // A warm-up message first, so that the measured ones find this socket past its start, as the plain one.
  let cursor0 = await lastCursor(DB);
  await push(server, [BOT_WA], 1, 'warm-up');
  await untilCount(() => messagesAfter.raw().get(cursor0)[0], 1, 'the warm-up message');
  cursor0 = await lastCursor(DB);
  const t0 = Date.now();
  await push(server, [BOT_WA], INBOUND, 'inbound');
  const pushMs = Date.now() - t0;
  await untilCount(() => messagesAfter.raw().get(cursor0)[0], INBOUND, 'wa serve storing');
  const total = ms(messagesAfter.raw().get(cursor0)[1]) - t0;
  const lag = daemon.lagBetween(t0);
  await daemon.stop();
  return { ms: total, pushMs, errors: daemon.errors, lag, reconnects: (daemon.opened.get('a') ?? 1) - 1 };
}

/** (c), plain: the same into a socket that only counts its upserts. */
async function plainInbound(server, folder, round) {
  const listener = new Daemon(
    `plain-listener-${round}`,
    [PLAIN_SCRIPT],
    plainEnv(server, folder, { MODE: 'listen', TARGET: String(INBOUND + 1) }),
  );
  await listener.waitFor((l) => l.msg === 'open', 'open');
  await push(server, [BOT_PLAIN], 1, 'warm-up');
  await listener.waitFor((l) => l.msg === 'warm', 'the warm-up message');
  const t0 = Date.now();
  await push(server, [BOT_PLAIN], INBOUND, 'inbound');
  const pushMs = Date.now() - t0;
  const done = await listener.waitFor((l) => l.msg === 'done', 'every message counted', 600_000);
  await listener.exit;
  return { ms: done.at - t0, pushMs };
}

/**
 * Runs wa and plain alternately, ROUNDS times each: the machine is shared, and a load that changes between
 * two long runs would otherwise land on one side only.
 */
async function rounds(label, wa, plain) {
  const r = { wa: [], plain: [] };
  process.stdout.write(`${label}, ${ROUNDS} round${ROUNDS > 1 ? 's' : ''} of wa then plain:`);
  for (let round = 1; round <= ROUNDS; round++) {
    r.wa.push(await wa(round));
    r.plain.push(await plain(round));
    process.stdout.write(` ${round}: ${fmt(r.wa.at(-1).ms)}/${fmt(r.plain.at(-1).ms)} ms`);
  }
  console.log('');
  return r;
}

const outbound = (server, folder) =>
  rounds(
    `(b) outbound, ${OUTBOUND} messages`,
    (round) => waOutbound(server, round),
    () => plainOutbound(server, folder),
  );
const inbound = (server, folder) =>
  rounds(
    `(c) inbound, ${INBOUND} messages`,
    (round) => waInbound(server, round),
    (round) => plainInbound(server, folder, round),
  );

async function rss(server) {
  const r = { rounds: [] };
  const ids = Array.from({ length: SESSIONS }, (_, i) => `r${String(i).padStart(3, '0')}`);
  const phones = ids.map((_, i) => `1555${String(4100000 + i)}`);
  process.stdout.write(`(d) RSS: pairing ${SESSIONS} sessions…`);
  const tp = Date.now();
  await pairAll(
    server,
    RSS_DB,
    ids.map((id, i) => [id, phones[i]]),
  );
  r.pairS = (Date.now() - tp) / 1000;
  process.stdout.write(` ${fmt(r.pairS, 1)} s; wa serve…`);
  const daemon = serve(server, RSS_DB, 'serve-rss');
  await daemon.waitOpen(ids, Math.max(120_000, SESSIONS * 2000));
  const sample = async () => {
    await sleep(SETTLE_S * 1000);
    const samples = [];
    for (let i = 0; i < RSS_SAMPLES; i++) {
      samples.push(rssKb(daemon.pid));
      await sleep(1000);
    }
    if (opts['cpu-prof']) daemon.child.kill('SIGUSR2');
    return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples) };
  };
  process.stdout.write(` all open; settle ${SETTLE_S} s…`);
  r.before = await sample();
  const db = await reader(RSS_DB);
  const stored = db.prepare(`SELECT count(*) FROM wa_events WHERE cursor > ? AND type = 'message'`).pluck();
  const cursor0 = await lastCursor(RSS_DB);
  for (let round = 1; round <= RSS_ROUNDS; round++) {
    process.stdout.write(` ${RSS_MESSAGES} messages…`);
    const t0 = Date.now();
    await push(server, phones, RSS_MESSAGES, `rss round ${round}`, RSS_RATE > 0 ? RSS_RATE : Infinity);
    await untilCount(() => stored.get(cursor0), round * RSS_MESSAGES, 'wa serve storing (d)');
    const storeS = (Date.now() - t0) / 1000;
    const lag = daemon.lagBetween(t0);
    process.stdout.write(` stored in ${fmt(storeS, 1)} s; settle…`);
    r.rounds.push({ total: round * RSS_MESSAGES, storeS, lag, rss: await sample() });
  }
  if (RSS_TTL_WAIT) {
    // Baileys keeps every message it decrypted in a per-socket LRU (512 entries, 5 minutes: the
    // recent-message cache of lib/Utils/message-retry-manager.js, for retry receipts), one timer each. Once
    // that has expired, what is left over the first sample is not a cache.
    const waitMs = RECENT_MESSAGE_TTL_MS + 10_000 - SETTLE_S * 1000 - RSS_SAMPLES * 1000;
    process.stdout.write(` waiting ${fmt(waitMs / 1000 + SETTLE_S, 0)} s for Baileys' 5-minute cache…`);
    await sleep(waitMs);
    r.afterTtl = await sample();
  }
  r.reconnects = [...daemon.opened.values()].filter((n) => n > 1).length;
  await daemon.stop();
  r.errors = daemon.errors;
  r.warnings = daemon.warnings;
  console.log(' done');
  return r;
}

// ------------------------------------------------------------------------------------------------- main
const LOAD_AT_START = loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');

async function main() {
  const t0 = Date.now();
  const require = createRequire(join(PROJECT, 'package.json'));
  const version = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;
  const { OUTBOX_POLL_MS } = await import('../dist/session/outbox.js');
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM; load average ${LOAD_AT_START}`,
  );
  console.log(`baileys ${version('@whiskeysockets/baileys')}, temp dir ${ROOT}`);
  console.log(
    `mode: ${QUICK ? 'quick' : 'full'}: (a) ${SENDS} sends each, (b) ${OUTBOUND} out, (c) ${INBOUND} in, ` +
      `(b)(c) ${ROUNDS} rounds, (d) ${SESSIONS} sessions, ${RSS_ROUNDS} × ${RSS_MESSAGES} messages at ${RSS_RATE > 0 ? `≤ ${RSS_RATE}/s` : 'full speed'}, settle ${SETTLE_S} s; only ${[...ONLY].join(',')}`,
  );

  const server = await startServerProcess(RUN, { known: [CONTACT], quiet: true });
  console.log(`test server: pid ${server.pid}, ${server.url}, contact ${CONTACT} (a simulated phone)`);

  let latencyR;
  let outboundR;
  let inboundR;
  let rssR;
  const folder = join(ROOT, 'auth-p');
  if (ONLY.has('a') || ONLY.has('b') || ONLY.has('c')) {
    const tp = Date.now();
    await pairAll(server, DB, [
      ['a', BOT_WA],
      ['p', BOT_PLAIN],
    ]);
    // Past Baileys' first-connection wait once (it then stores accountSyncCounter), for both sessions.
    process.stdout.write(`paired a (wa) and p (plain) in ${fmt((Date.now() - tp) / 1000, 1)} s; first connections…`);
    const warm = serve(server, DB, 'serve-warm-up', ['a', 'p']);
    await warm.waitOpen(['a', 'p']);
    for (const id of ['a', 'p'])
      await warm.waitFor(
        (l) => l.session === id && /AwaitingInitialSync/.test(l.msg ?? ''),
        `${id}'s first-connection wait`,
        40_000,
      );
    await sleep(1000);
    await warm.stop();
    const exported = await runProcess(RUN, [WA, 'export', 'p', folder], { ...BASE_ENV, WA_DB: DB });
    if (exported.code !== 0) throw new Error(`wa export p exited ${exported.code}: ${exported.stderr}`);
    const creds = JSON.parse(readFileSync(join(folder, 'creds.json'), 'utf8'));
    console.log(` done; p exported (accountSyncCounter ${creds.accountSyncCounter})`);
    if (ONLY.has('a')) latencyR = await latency(server, folder);
    if (ONLY.has('b')) outboundR = await outbound(server, folder);
    if (ONLY.has('c')) inboundR = await inbound(server, folder);
  }
  if (ONLY.has('d')) rssR = await rss(server);

  // --- report
  const W = 50;
  const header = (a, b, c, d) => console.log(`  ${padR('', W)}${padL(a, 12)}${padL(b, 14)}${padL(c, 10)}   ${d}`);
  const row = (label, a, b, c = '', d = '') =>
    console.log(`  ${padR(label, W)}${padL(a, 12)}${padL(b, 14)}${padL(c, 10)}   ${d}`);
  const x = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '—');
  console.log('');
  console.log('results');
  if (latencyR) {
    const { delegated, direct, plain } = latencyR;
    const p = (runs, key, q) =>
      pct(
        runs.map((run) => run[key]),
        q,
      );
    console.log(`(a) wa send latency, ${SENDS} sends each (ms; "to sent" = until WhatsApp's server ack)`);
    header('p50', 'p95', 'vs plain', '(p50 ratio: plain / this; >1 = faster than plain)');
    const plainP50 = p(plain, 'toSent', 50);
    row(
      'delegated to wa serve: spawn → row sent',
      fmt(p(delegated, 'toSent', 50)),
      fmt(p(delegated, 'toSent', 95)),
      x(plainP50 / p(delegated, 'toSent', 50)),
      'target: several times faster',
    );
    row(
      '                       spawn → exit 0',
      fmt(p(delegated, 'wall', 50)),
      fmt(p(delegated, 'wall', 95)),
      x(p(plain, 'wall', 50) / p(delegated, 'wall', 50)),
      '(vs plain spawn → exit)',
    );
    row(
      'direct (no daemon):    spawn → row sent',
      fmt(p(direct, 'toSent', 50)),
      fmt(p(direct, 'toSent', 95)),
      x(plainP50 / p(direct, 'toSent', 50)),
    );
    row(
      '                       spawn → exit 0 (linger incl.)',
      fmt(p(direct, 'wall', 50)),
      fmt(p(direct, 'wall', 95)),
      x(p(plain, 'wall', 50) / p(direct, 'wall', 50)),
      '(vs plain spawn → exit)',
    );
    row(
      '                       sent → exit (~2 s linger, close)',
      fmt(median(direct.map((d) => d.wall - d.toSent))),
      '',
      '',
    );
    const steps = (runs) =>
      `${fmt(p(runs, 'toQueued', 50))} / ${fmt(p(runs, 'claim', 50))} / ${fmt(p(runs, 'send', 50))}`;
    console.log(
      `  medians of the steps, spawn → queued / queued → sending (claimed) / sending → sent (resolve, send, ack), ms:\n` +
        `    delegated ${steps(delegated)};  direct ${steps(direct)}`,
    );
    row('plain Baileys script:  spawn → server ack', fmt(plainP50), fmt(p(plain, 'toSent', 95)), '1.00x');
    row('                       spawn → exit', fmt(p(plain, 'wall', 50)), fmt(p(plain, 'wall', 95)), '');
    const verdict = plainP50 / p(delegated, 'toSent', 50);
    console.log(
      `  verdict: delegated is ${x(verdict)} the plain script's speed to the server ack: ${verdict >= 3 ? 'met' : 'NOT met'} (≥ 3x)`,
    );
  }
  /** Median time of each side over the rounds, the rows of one throughput table. */
  const throughput = (r, count, plainLabel, target, extra) => {
    const waMs = median(r.wa.map((x) => x.ms));
    const plainMs = median(r.plain.map((x) => x.ms));
    header('wa serve', plainLabel, 'wa/plain', `(throughput ratio; median of ${ROUNDS} round${ROUNDS > 1 ? 's' : ''})`);
    row('time (s)', fmt(waMs / 1000, 2), fmt(plainMs / 1000, 2));
    row(
      'messages per second',
      fmt((count / waMs) * 1000, 1),
      fmt((count / plainMs) * 1000, 1),
      x(plainMs / waMs),
      `target ≥ ${target}x: ${plainMs / waMs >= target ? 'met' : 'NOT met'}`,
    );
    if (ROUNDS > 1)
      console.log(
        `    each round (wa, plain, ratio): ` +
          r.wa
            .map(
              (w, i) =>
                `${fmt((count / w.ms) * 1000, 0)}, ${fmt((count / r.plain[i].ms) * 1000, 0)}, ${x(r.plain[i].ms / w.ms)}`,
            )
            .join(';  ') +
          ' messages per second',
      );
    extra(median);
  };
  if (outboundR) {
    console.log(`(b) outbound, ${OUTBOUND} messages to one contact, until every server ack`);
    throughput(outboundR, OUTBOUND, 'plain loop', 0.8, (med) => {
      row(
        '  of which: queueing (wa) / the write loop (plain), s',
        fmt(med(outboundR.wa.map((x) => x.enqueueMs)) / 1000, 2),
        fmt(med(outboundR.plain.map((x) => x.writeMs)) / 1000, 2),
      );
      row(
        '  error log lines (wa) / error acks (plain)',
        String(outboundR.wa.reduce((n, x) => n + x.errors, 0)),
        String(outboundR.plain.reduce((n, x) => n + x.errors, 0)),
      );
    });
  }
  if (inboundR) {
    console.log(
      `(c) inbound, ${INBOUND} messages from the contact's phone into one session, until all stored / counted`,
    );
    throughput(inboundR, INBOUND, 'plain counter', 0.7, (med) => {
      row(
        '  the server pushing them (admin calls), s',
        fmt(med(inboundR.wa.map((x) => x.pushMs)) / 1000, 2),
        fmt(med(inboundR.plain.map((x) => x.pushMs)) / 1000, 2),
        '',
        '(a floor on both: the phone encrypts them)',
      );
      row('  error log lines (wa)', String(inboundR.wa.reduce((n, x) => n + x.errors, 0)), '');
      row(
        '  wa serve event-loop delay, max (s) / reconnects',
        `${fmt(Math.max(...inboundR.wa.map((x) => x.lag.maxMs)) / 1000, 2)} / ${inboundR.wa.reduce((n, x) => n + x.reconnects, 0)}`,
        '',
      );
    });
  }
  if (rssR) {
    console.log(
      `(d) wa serve RSS, ${SESSIONS} sessions (MB; median of ${RSS_SAMPLES} samples, 1 s apart, after ${SETTLE_S} s settle)`,
    );
    header('median', 'min–max', 'growth', '');
    const b = rssR.before.median;
    row('before any message', fmt(mb(b), 1), `${fmt(mb(rssR.before.min), 1)}–${fmt(mb(rssR.before.max), 1)}`, '');
    for (const round of rssR.rounds)
      row(
        `after ${round.total} messages (${round.total / SESSIONS}/session)`,
        fmt(mb(round.rss.median), 1),
        `${fmt(mb(round.rss.min), 1)}–${fmt(mb(round.rss.max), 1)}`,
        `${fmt(mb(round.rss.median - b), 1)}`,
        `stored in ${fmt(round.storeS, 1)} s (${fmt(RSS_MESSAGES / round.storeS, 0)}/s); event-loop delay ` +
          `max ${fmt(round.lag.maxMs / 1000, 1)} s (${round.lag.overOneS}× over 1 s)`,
      );
    if (rssR.afterTtl)
      row(
        `  then past Baileys' 5-min recent-message cache`,
        fmt(mb(rssR.afterTtl.median), 1),
        `${fmt(mb(rssR.afterTtl.min), 1)}–${fmt(mb(rssR.afterTtl.max), 1)}`,
        `${fmt(mb(rssR.afterTtl.median - b), 1)}`,
        'no new messages meanwhile',
      );
    console.log(
      `  paired in ${fmt(rssR.pairS, 1)} s; sessions that reconnected: ${rssR.reconnects}; error lines ${rssR.errors}` +
        [...rssR.warnings].map(([m, n]) => `; warn ${n}× ${m}`).join(''),
    );
  }
  console.log('');
  console.log('what limits the figures');
  console.log(
    `  (a) spawn → queued is wa send's own start-up: node, the CLI, opening the database and the lease check (a
` +
      `      delegated send loads no Baileys: src/session/message-id.ts makes the id; a direct one imports Baileys and
` +
      `      self-tests wa's identity checks, ~0.5 s). Then the owner's idle outbox poll on SQLite (${OUTBOX_POLL_MS} ms: ~${OUTBOX_POLL_MS / 2} ms
` +
      `      on average; PostgreSQL wakes it by NOTIFY) and the send itself; wa send reads its row every 25 ms. The plain
` +
      `      script imports Baileys too, but its connect and login cost ~0.1 s on loopback (a real WhatsApp login is seconds).`,
  );
  console.log(
    `  (b) wa sends one message at a time per session and waits for its ack before claiming the next (at most one\n` +
      `      ambiguous: README "Sending messages"), and commits each step (claim, Signal keys, sent, delivered) with\n` +
      `      an fsync; the plain loop pipelines every write, counts acks as they come and writes files unsynced.`,
  );
  console.log(
    `  (c) per message wa commits twice (Baileys' Signal session, then the message; messages queued behind a write\n` +
      `      are stored together). The simulated phone encrypts every message (two copies: the session and the\n` +
      `      account's phone) in the server process: when the push time is close to the total, the server is the limit.`,
  );
  console.log(
    `  (d) Baileys keeps each decrypted message for 5 minutes (at most 512 per socket) to answer retries\n` +
      `      (lib/Utils/message-retry-manager.js), with a timer each; and every socket adds an AsyncLocalStorage\n` +
      `      (lib/Utils/auth-utils.js addTransactionCapability, never disabled) whose slot every later timer and\n` +
      `      promise of the process carries: with ${SESSIONS} sockets a cached message's timer costs kilobytes, and every\n` +
      `      reconnect adds a slot. Once wa serve falls behind (--rss-rate 0, or the default rate on a loaded machine)\n` +
      `      Baileys works through each socket's backlog without yielding, the event loop is held for seconds, lease\n` +
      `      renewals starve and wa serve closes its sessions (the reconnect count above), each reconnect a new slot.`,
  );
  console.log(
    `\nload average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (at the start: ${LOAD_AT_START})` +
      (benchUnhandled ? `; ${benchUnhandled} unhandled rejections while pairing (ignored)` : ''),
  );
  console.log(`total ${fmt((Date.now() - t0) / 1000, 1)} s`);
}

try {
  await main();
} catch (error) {
  console.error(`\nbench:messages failed: ${error instanceof Error ? error.stack : error}`);
  process.exitCode = 1;
} finally {
  for (const db of dbs.values()) db.close();
  RUN.cleanup();
  process.exit(process.exitCode ?? 0);
}
