// bench:gateway — what `wa` costs as a gateway (README "Webhooks", "HTTP API", "Library"), against the
// loopback WhatsApp test server:
//
//   (a) webhook latency: the contact's simulated phone sends RATE messages/s for DURATION s into one session
//       `wa serve` holds, with WA_WEBHOOK_URL pointing at a node:http receiver in this process (answers
//       204, checks every X-Wa-Signature). Latency of a message = the receiver got the POST carrying its
//       text (a sequence number) − the moment this process asked the phone to send it (the admin call's
//       start). p50/p99/max, received vs sent; beside it the admin call's own duration (it encrypts two
//       copies in the server process before routing them), the split at the event's `at` (stored, then
//       posted), the webhook's back-to-back POST rate while behind, and how contended the CPUs were (PSI).
//   (b) backlog drain: the receiver answers 503 for OUTAGE s while messages arrive at OUT_RATE/s, then 204
//       again. The backlog (events not yet delivered at the recovery), recovery → first successful POST
//       (bounded by the full-jitter backoff the failing event is in, README "Webhooks": a random delay below
//       1 s, 2 s, 4 s, … capped at 5 min — the attempt due after the recovery was drawn at the last failure),
//       and the drain rate from the first successful POST to the last backlog event. Checks: per-session
//       cursor order of the successful POSTs, every message arrived.
//   (c) sending into one session: M messages POSTed to /sessions/{id}/messages (202 queued, a few clients
//       at once) → the last one `sent` (WhatsApp's server ack, the `sent` status event's time in the
//       database); against `wa send` processes run one after another, each delegated to that same daemon
//       (README "Sending messages": the owner sends), and the plain Baileys floor: a sendMessage loop on one
//       open socket until every server ack is in (as bench/messages.js (b)).
//   (d) RSS per session of `startSessions()` (a child process running startSessions({ db, wsUrl }) from
//       dist/index.js) vs `wa serve`, R sessions on one database, one program at a time (leases: README
//       "One owner per session"): (VmRSS with R open after a settle and a forced full GC − the same for the
//       same program with 0 sessions) / R; the V8 heap used per session and the figure without the forced
//       GC beside it (GC_PRELOAD below says why).
//
// One contact (a `--known` number of the test server: a simulated phone with no linked devices) sends
// every inbound message and receives every outbound one. Every session had one connection past Baileys'
// 20 s first-connection wait (lib/Socket/chats.js AwaitingInitialSync) before anything is measured, so no
// figure includes that wait (bench/serve.js measures it instead). wa runs with its default timing (no
// WA_TIMING): webhook poll 50 ms, backoff base 1 s cap 5 min, outbox poll 200 ms. The test server runs in
// its own process (its CPU is counted against no side).
//
// Prints figures and ratios; never asserts timings (the machine is noisy). Linux only (/proc).
// Usage: npm run bench:gateway [-- --quick] [--rate N] [--duration S] [--outage S] [--out-rate N]
//        [--messages M] [--sends N] [--rounds N] [--sessions R] [--settle-seconds S] [--only a,b,c,d] [--keep]
//        [--cpu-prof (wa serve's V8 CPU profiles, kept in the temp dir)]
//        (or: npm run build && node bench/gateway.js …)

import { pairDevice } from '../test/support/pair-device.js';
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  benchRun,
  cpuSeconds,
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
  options: {
    quick: { type: 'boolean', default: false },
    rate: { type: 'string' },
    duration: { type: 'string' },
    outage: { type: 'string' },
    'out-rate': { type: 'string' },
    messages: { type: 'string' },
    sends: { type: 'string' },
    rounds: { type: 'string' },
    sessions: { type: 'string' },
    'settle-seconds': { type: 'string' },
    only: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const QUICK = opts.quick;
const { DEFAULT_TIMING } = await import('../dist/config.js');
const RATE = Number(opts.rate ?? 100); // (a) messages per second
const DURATION_S = Number(opts.duration ?? (QUICK ? 10 : 60)); // (a)
const OUTAGE_S = Number(opts.outage ?? (QUICK ? 15 : 60)); // (b)
const OUT_RATE = Number(opts['out-rate'] ?? 20); // (b) messages per second during the outage
const MESSAGES = Number(opts.messages ?? (QUICK ? 100 : 500)); // (c) HTTP sends and the plain loop
const SENDS = Number(opts.sends ?? (QUICK ? 10 : 20)); // (c) `wa send` processes
/** (c) runs HTTP, wa send and plain in turn this many times (medians reported): the machine is shared. */
const ROUNDS = Number(opts.rounds ?? (QUICK ? 1 : 3));
const SESSIONS = Number(opts.sessions ?? (QUICK ? 10 : 50)); // (d)
// 15 s: every session is past its first-connection wait (warmed up below), so what is left to settle is
// the login's own writes and a garbage collection or two.
const SETTLE_S = Number(opts['settle-seconds'] ?? 15);
const RSS_SAMPLES = 10; // one a second, the median reported (RSS swings with GC)
const ONLY = new Set((opts.only ?? 'a,b,c,d').split(',').map((s) => s.trim()));
for (const [name, v] of Object.entries({
  RATE,
  DURATION_S,
  OUTAGE_S,
  OUT_RATE,
  MESSAGES,
  SENDS,
  ROUNDS,
  SESSIONS,
  SETTLE_S,
}))
  if (!Number.isFinite(v) || v < 1) throw new Error(`bad ${name}: ${v}`);
const HTTP_CLIENTS = 4; // (c) concurrent POSTers
const PAIR_CONCURRENCY = 5;

const CONTACT = '15550005252'; // the simulated phone every message comes from and goes to
const BOT_WA = '15550005001'; // session `a`, used through wa
const BOT_PLAIN = '15550005002'; // session `p`, used by the plain Baileys script (exported folder)
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`;
const SECRET = 'bench-gateway-webhook-secret';

// ------------------------------------------------------------------------------- processes and cleanup
const RUN = benchRun('wa-bench-gateway-', { keep: opts.keep || opts['cpu-prof'] });
const ROOT = RUN.root;
const DB = join(ROOT, 'wa.db');
const RSS_DB = join(ROOT, 'rss.db');
const BASE_ENV = RUN.baseEnv;
// Baileys fires promises it never awaits; when a socket closes under them while pairing in this process
// they reject unhandled. Counted, not fatal.
let benchUnhandled = 0;
process.on('unhandledRejection', () => benchUnhandled++);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

const waEnv = (server, db, extra = {}) => ({ ...waEnvFor(BASE_ENV, server, db), ...extra });

/**
 * CPU pressure (Linux PSI, /proc/pressure/cpu "some"): the total time in µs some runnable task waited for a
 * CPU. Its growth over a window, as a share of the window, says how contended the machine was then (the
 * load average lags by a minute and counts this benchmark's own processes too). NaN where PSI is absent.
 */
function cpuStallUs() {
  try {
    return Number(/^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1]);
  } catch {
    return NaN;
  }
}
const psiAvg60 = () => {
  try {
    return /^some avg10=([\d.]+) avg60=([\d.]+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[2] ?? '?';
  } catch {
    return '?';
  }
};

/**
 * A long-running process (`wa serve`, the library bot) whose JSON lines are kept in a log file. (Copied
 * from bench/messages.js, plus the library bot's `all open` line.)
 */
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
      // Per-message lines ('messages stored', 'message sent') are only written to the file: parsing
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
    this.child.stderr.setEncoding('utf8').on('data', (c) => appendFileSync(this.logFile, c));
  }

  tail() {
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-25).join('\n');
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

/** `wa serve [args]`; with --cpu-prof each one writes a V8 CPU profile to <temp dir>/profiles/<name> on its graceful exit. */
const serve = (server, db, name, args = [], extraEnv = {}) =>
  new Daemon(
    name,
    [
      ...(opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'profiles', name)}`] : []),
      WA,
      'serve',
      ...args,
    ],
    waEnv(server, db, extraEnv),
  );

// ------------------------------------------------------------------------------- the plain Baileys script
/**
 * (c)'s floor, what a user writes without wa (copied from bench/messages.js, its `send-many` mode):
 * useMultiFileAuthState on a folder, one makeWASocket with the test server's URL (its root trusted) and a
 * silent logger, creds.update → saveCreds; once open, a sendMessage loop, then it waits for every server
 * ack — `CB:ack,class:message` by id, as src/session/outbox.ts does, since Baileys emits nothing for a
 * clean ack. Times are Date.now().
 */
const PLAIN_SCRIPT = join(ROOT, 'plain.mjs');
writeFileSync(
  PLAIN_SCRIPT,
  `// generated by bench/gateway.js
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
const { FOLDER, TO, COUNT } = process.env;

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
sock.ev.on('connection.update', async ({ connection, lastDisconnect }) => {
  if (connection === 'close') {
    if (ending) return;
    emit({ msg: 'closed', code: lastDisconnect?.error?.output?.statusCode });
    process.exit(3);
  }
  if (connection !== 'open') return;
  emit({ msg: 'open', at: Date.now() });
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

// ---------------------------------------------------------------------------------- the library bot (d)
/**
 * (d)'s library side: the smallest bot that holds every paired session open through startSessions() —
 * README "Library" with nothing but its required options (db, wsUrl: the test server) and the default
 * logger. It polls status() only until every session it expects is open, then idles like the daemon.
 * SIGTERM → close() (releases the leases at once, so `wa serve` can take the sessions next).
 */
const LIB_SCRIPT = join(ROOT, 'library-bot.mjs');
writeFileSync(
  LIB_SCRIPT,
  `// generated by bench/gateway.js
import { startSessions } from ${JSON.stringify(pathToFileURL(join(PROJECT, 'dist', 'index.js')).href)};
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const expect = Number(process.env.EXPECT_SESSIONS);
const wa = await startSessions({ db: process.env.BOT_DB, wsUrl: process.env.BOT_WS_URL });
emit({ msg: 'started' });
process.once('SIGTERM', () => void wa.close().then(() => process.exit(0)));
process.stdin.on('end', () => process.exit(0)); // dies with the benchmark
process.stdin.resume();
for (;;) {
  const { sessions } = await wa.status();
  const open = sessions.filter((s) => s.ownedHere && s.connection === 'open').length;
  if (open >= expect) {
    emit({ msg: 'all open', open });
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}
`,
);

/**
 * (d) reads VmRSS after a full garbage collection in every program: left alone, V8 returns a startup's
 * garbage (~30 MB here) whenever its memory reducer happens to run — tens of seconds in, or never in an
 * idle 0-session program — which swamps what R sessions add (a quick run measured negative per-session
 * figures). So every (d) program runs with --expose-gc and this preload, which collects on SIGUSR2 and
 * prints one line; nothing else in the program changes.
 */
const GC_PRELOAD = join(ROOT, 'gc-on-signal.mjs');
writeFileSync(
  GC_PRELOAD,
  `// generated by bench/gateway.js
process.on('SIGUSR2', () => {
  globalThis.gc();
  globalThis.gc(); // what the first one's finalizers let go
  const { heapUsed, rss } = process.memoryUsage();
  process.stdout.write(JSON.stringify({ msg: 'bench gc', heapUsed, rss }) + '\\n');
});
`,
);
const gcEnv = (env) => ({ ...env, NODE_OPTIONS: `${env.NODE_OPTIONS} --expose-gc --import ${GC_PRELOAD}` });

const libraryBot = (server, db, name, expect) =>
  new Daemon(
    name,
    [LIB_SCRIPT],
    gcEnv(waEnv(server, db, { BOT_DB: db, BOT_WS_URL: server.url, EXPECT_SESSIONS: String(expect) })),
  );
/** `wa serve` for (d): with the GC preload. */
const rssServe = (server, db, name) => new Daemon(name, [WA, 'serve'], gcEnv(waEnv(server, db)));

// ------------------------------------------------------------------------------------------------ pairing
/** Pairs each [id, phone] in this process: QR → the phone scans it → 515 → first login. (Copied from bench/messages.js.) */
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

/**
 * One `wa serve` connection per session past Baileys' first-connection wait (it then stores
 * accountSyncCounter and later logins skip the 20 s wait: lib/Socket/chats.js), then stopped.
 */
async function warmUp(server, db, ids, name) {
  const warm = serve(server, db, name, ids);
  await warm.waitOpen(ids, Math.max(120_000, ids.length * 2000));
  for (const id of ids)
    await warm.waitFor(
      (l) => l.session === id && /Timeout in AwaitingInitialSync/.test(l.msg ?? ''),
      `${id}'s first-connection wait`,
      60_000,
    );
  await sleep(1000);
  await warm.stop();
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

async function lastCursor(path) {
  return (await reader(path)).prepare(`SELECT coalesce(max(cursor), 0) FROM wa_events`).pluck().get();
}

/** Polls until `count()` reaches `target`, failing when it stops moving for `stallMs`. (Copied from bench/messages.js.) */
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
const x = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '—');

// ---------------------------------------------------------------------------------------- the receiver
/**
 * The webhook receiver (README "Webhooks", its Node example): checks the signature over the raw body
 * before anything else (a bad one is counted and answered 401, so a wrong secret or body shows), then
 * answers `status` (204, or 503 during (b)'s outage). Records every request with its arrival time.
 */
class Receiver {
  constructor(secret) {
    this.secret = secret;
    this.status = 204;
    this.requests = []; // { at, id, session, type, text, status }
    this.firstOk = new Map(); // message text → its first successful request
    this.okByLabel = new Map(); // 'lat' → how many distinct `lat <i>` texts were delivered
    this.badSignatures = 0;
    this.waiters = new Set();
  }

  async start() {
    this.server = createServer((req, res) => {
      const chunks = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', () => {
        const at = now();
        const raw = Buffer.concat(chunks);
        const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(req.headers['x-wa-signature'] ?? '') ?? [];
        const expected = t && createHmac('sha256', this.secret).update(`${t}.`).update(raw).digest();
        if (!expected || !timingSafeEqual(expected, Buffer.from(v1, 'hex')) || Math.abs(Date.now() / 1000 - t) > 300) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const event = JSON.parse(raw.toString('utf8'));
        const status = this.status;
        const request = {
          at,
          id: BigInt(req.headers['x-wa-event-id']),
          session: event.session,
          type: event.type,
          text: event.type === 'message' ? event.text : undefined,
          // When wa stored the event (its `at`, wa serve's clock), on this process's clock.
          storedAt: Date.parse(event.at) - performance.timeOrigin,
          status,
        };
        this.requests.push(request);
        if (status < 300 && typeof request.text === 'string' && !this.firstOk.has(request.text)) {
          this.firstOk.set(request.text, request);
          const label = request.text.split(' ')[0];
          this.okByLabel.set(label, (this.okByLabel.get(label) ?? 0) + 1);
        }
        res.writeHead(status).end();
        for (const wake of this.waiters) wake();
      });
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}/hooks/wa`;
  }

  /** The first successful request whose text is `text` (undefined if none yet). */
  delivered(text) {
    return this.firstOk.get(text);
  }

  /** How many distinct `${label} <i>` texts were delivered. */
  count(label) {
    return this.okByLabel.get(label) ?? 0;
  }

  /** Resolves once `predicate()` holds, checked on every request; fails when nothing new arrives for `stallMs`. */
  async until(predicate, what, stallMs = 30_000) {
    while (!predicate()) {
      const arrived = await new Promise((resolve) => {
        const wake = () => done(true);
        const done = (value) => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve(value);
        };
        const timer = setTimeout(() => done(false), stallMs);
        this.waiters.add(wake);
      });
      if (!arrived && !predicate())
        throw new Error(`webhook receiver: no request for ${stallMs} ms while waiting for ${what}`);
    }
  }

  close() {
    this.server?.closeAllConnections();
    this.server?.close();
  }
}

/**
 * Asks the contact's phone to send `count` messages `${label} <i>` at `rate` per second, open loop (each
 * call on its schedule, whether the ones before it returned or not): the arrival pattern a gateway sees.
 * Returns per message when it was asked (performance.now(), just before the admin call) and when the
 * call returned, plus how far the schedule itself slipped (this process's timers).
 */
async function pace(server, label, count, rate) {
  const askedAt = new Array(count);
  const returnedAt = new Array(count);
  const calls = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let slip = 0;
  const t0 = now();
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    askedAt[i] = now();
    slip = Math.max(slip, askedAt[i] - due);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    calls.push(
      server.post('/phone/send', { phone: CONTACT, to: BOT_WA, text: `${label} ${i}` }).then(() => {
        returnedAt[i] = now();
        inFlight--;
      }),
    );
  }
  await Promise.all(calls);
  return { askedAt, returnedAt, maxInFlight, slip, spanMs: askedAt[count - 1] - askedAt[0] };
}

// ------------------------------------------------------------------------------------------- measurements
/** (a) and (b), on one `wa serve` holding `a` with webhooks on. */
async function webhooks(server) {
  const receiver = new Receiver(SECRET);
  await receiver.start();
  const daemon = serve(server, DB, 'serve-webhooks', ['a'], {
    WA_WEBHOOK_URL: receiver.url,
    WA_WEBHOOK_SECRET: SECRET,
  });
  try {
    await daemon.waitOpen(['a']);
    // A first webhook run starts at the session's oldest kept event (README "Webhooks", "The first time"):
    // the pairing's and warm-up's connection events go first. A warm-up message then finds the whole
    // path (phone → socket → store → poll → POST) past its start.
    await server.post('/phone/send', { phone: CONTACT, to: BOT_WA, text: 'warm 0' });
    await receiver.until(() => receiver.delivered('warm 0'), 'the warm-up message');
    const a = ONLY.has('a') ? await latency(server, receiver, daemon) : undefined;
    const b = ONLY.has('b') ? await backlog(server, receiver) : undefined;
    // Order over the whole run: the successful POSTs of the session in strictly increasing cursor order
    // (a repeat of an id already delivered is a duplicate, counted; README "Webhooks", "Order").
    const ok = receiver.requests.filter((r) => r.session === 'a' && r.status < 300);
    let highest = 0n;
    let outOfOrder = 0;
    let duplicates = 0;
    const seen = new Set();
    for (const r of ok) {
      if (seen.has(r.id)) duplicates++;
      else if (r.id < highest) outOfOrder++;
      seen.add(r.id);
      if (r.id > highest) highest = r.id;
    }
    // Every event stored for the session was delivered (nothing skipped, whatever its type).
    const db = await reader(DB);
    const stored = db.prepare(`SELECT cursor FROM wa_events WHERE session_id = 'a' ORDER BY cursor`).pluck().all();
    const missing = stored.filter((c) => !seen.has(BigInt(c))).length;
    const checks = {
      posts: ok.length,
      outOfOrder,
      duplicates,
      stored: stored.length,
      missing,
      badSignatures: receiver.badSignatures,
      failedAttempts: receiver.requests.filter((r) => r.status >= 300).length,
    };
    await daemon.stop();
    checks.errors = daemon.errors;
    checks.warnings = daemon.warnings;
    // Why attempts failed, as wa logged them: the 503s of (b), and anything else (a refused or reset
    // connection, a timeout) that never reached the receiver.
    checks.failures = new Map();
    for (const l of daemon.interesting)
      if (l.msg === 'webhook delivery failed; retrying')
        checks.failures.set(l.error, (checks.failures.get(l.error) ?? 0) + 1);
    return { a, b, checks };
  } finally {
    receiver.close();
  }
}

async function latency(server, receiver, daemon) {
  const count = Math.round(RATE * DURATION_S);
  process.stdout.write(`(a) webhook latency: ${count} messages at ${RATE}/s…`);
  const cpu0 = { wa: cpuSeconds(daemon.pid), server: cpuSeconds(server.pid), stall: cpuStallUs(), at: now() };
  // This process runs the receiver and the schedule: its own event-loop delay bounds what it adds.
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const sent = await pace(server, 'lat', count, RATE);
  process.stdout.write(' sent;');
  const texts = Array.from({ length: count }, (_, i) => `lat ${i}`);
  const got = (i) => receiver.delivered(texts[i]);
  await receiver
    .until(() => receiver.count('lat') >= count, 'every (a) message', 30_000)
    .catch((error) => {
      console.log(` ${error.message}`);
    });
  // CPU from the first ask to the last POST, % of one core (2 cores here: the bench's own share is the rest).
  const lastAt = Math.max(...texts.map((_, i) => got(i)?.at ?? -Infinity), now() - 1);
  const windowS = (Math.min(now(), lastAt) - cpu0.at) / 1000;
  loopDelay.disable();
  const cpu = {
    benchLoopP99: loopDelay.percentile(99) / 1e6,
    benchLoopMax: loopDelay.max / 1e6,
    stall: ((cpuStallUs() - cpu0.stall) / 1e6 / windowS) * 100,
    wa: ((cpuSeconds(daemon.pid) - cpu0.wa) / windowS) * 100,
    server: ((cpuSeconds(server.pid) - cpu0.server) / windowS) * 100,
  };
  const latencies = [];
  const afterReturn = [];
  const toStored = [];
  const storedToPost = [];
  for (let i = 0; i < count; i++) {
    const d = got(i);
    if (!d) continue;
    latencies.push(d.at - sent.askedAt[i]);
    afterReturn.push(d.at - sent.returnedAt[i]);
    toStored.push(d.storedAt - sent.askedAt[i]);
    storedToPost.push(d.at - d.storedAt);
  }
  // The webhook's service time: consecutive POSTs where the later event was already stored when the one
  // before it arrived (the worker was behind, so nothing but the work itself separated them).
  const posts = receiver.requests.filter((r) => r.text?.startsWith('lat ') && r.status < 300);
  const backToBack = [];
  for (let k = 1; k < posts.length; k++)
    if (posts[k].storedAt <= posts[k - 1].at) backToBack.push(posts[k].at - posts[k - 1].at);
  const callMs = sent.askedAt.map((t, i) => sent.returnedAt[i] - t);
  // p99 per 5 s of the schedule: a lag that builds in one stretch (the machine busy then) or throughout.
  const windows = [];
  for (let from = 0; from < count; from += 5 * RATE) {
    const slice = [];
    for (let i = from; i < Math.min(count, from + 5 * RATE); i++) {
      const d = got(i);
      if (d) slice.push(d.at - sent.askedAt[i]);
    }
    windows.push(pct(slice, 99));
  }
  console.log(` ${latencies.length}/${count} posted`);
  return {
    count,
    received: latencies.length,
    latencies,
    afterReturn,
    toStored,
    storedToPost,
    backToBack,
    windows,
    cpu,
    callMs,
    rate: ((count - 1) / sent.spanMs) * 1000,
    maxInFlight: sent.maxInFlight,
    slip: sent.slip,
  };
}

async function backlog(server, receiver) {
  const count = Math.round(OUT_RATE * OUTAGE_S);
  const db = await reader(DB);
  const position = db.prepare(
    `SELECT cursor, failing_cursor, attempts, first_failed_at, next_at FROM wa_webhooks WHERE session_id = 'a'`,
  );
  const messagesAfter = db
    .prepare(`SELECT count(*) FROM wa_events WHERE session_id = 'a' AND type = 'message' AND cursor > ?`)
    .pluck();
  const eventsAfter = db.prepare(`SELECT count(*) FROM wa_events WHERE session_id = 'a' AND cursor > ?`).pluck();
  process.stdout.write(`(b) backlog: receiver answers 503 for ${OUTAGE_S} s, ${count} messages at ${OUT_RATE}/s…`);
  const cursor0 = await lastCursor(DB);
  receiver.status = 503;
  const downAt = now();
  const firstRequest = receiver.requests.length;
  await pace(server, 'out', count, OUT_RATE);
  // Every message is stored (in the database, the backlog) before the receiver comes back.
  await untilCount(() => messagesAfter.get(cursor0), count, 'wa serve storing (b)');
  const remaining = OUTAGE_S * 1000 - (now() - downAt);
  if (remaining > 0) await sleep(remaining);
  // The recovery: what is still to post and when the held-back event's next attempt is due.
  const held = position.get();
  const epochAtRecovery = Date.now();
  const backlogEvents = eventsAfter.get(held.cursor);
  receiver.status = 204;
  const upAt = now();
  const outageMs = upAt - downAt;
  process.stdout.write(` up again after ${fmt(outageMs / 1000, 1)} s, ${backlogEvents} events behind;`);
  const texts = Array.from({ length: count }, (_, i) => `out ${i}`);
  // The held-back event waits for its drawn delay (up to the ceiling), then the rest goes at once.
  const waitMs = Math.max(0, (held.next_at ?? epochAtRecovery) - epochAtRecovery) + 60_000;
  await receiver
    .until(() => receiver.count('out') >= count, 'every (b) message', waitMs)
    .catch((error) => {
      console.log(` ${error.message}`);
    });
  const during = receiver.requests.slice(firstRequest);
  const failed = during.filter((r) => r.status >= 300);
  // The backlog's events: every event past the stored position at the recovery, their first successful POST.
  const backlogCursors = new Set(
    db
      .prepare(`SELECT cursor FROM wa_events WHERE session_id = 'a' AND cursor > ? ORDER BY cursor LIMIT ?`)
      .pluck()
      .all(held.cursor, backlogEvents)
      .map((c) => BigInt(c)),
  );
  const firstOk = new Map();
  for (const r of during) if (r.status < 300 && backlogCursors.has(r.id) && !firstOk.has(r.id)) firstOk.set(r.id, r.at);
  const times = sorted([...firstOk.values()]);
  const first = times[0];
  const last = times.at(-1);
  console.log(` drained in ${fmt((last - upAt) / 1000, 1)} s`);
  return {
    count,
    outageMs,
    backlogEvents,
    deliveredBacklog: firstOk.size,
    failedAttempts: failed.length,
    failedCursors: new Set(failed.map((r) => r.id)).size,
    attemptsStored: held.attempts,
    scheduledMs: held.next_at === null ? NaN : held.next_at - epochAtRecovery,
    // backoffDelay(attempts − 1) in src/daemon/backoff.ts: uniform in [0, min(cap, base·2^(attempts−1))).
    ceilingMs: Math.min(
      DEFAULT_TIMING.webhookCapMs,
      DEFAULT_TIMING.webhookBaseMs * 2 ** Math.max(0, held.attempts - 1),
    ),
    firstMs: first - upAt,
    drainMs: last - first,
    drainRate: times.length > 1 ? ((times.length - 1) / (last - first)) * 1000 : NaN,
    missing: texts.filter((t) => !receiver.delivered(t)).length,
  };
}

/** (c), HTTP: M POSTs (202 queued), HTTP_CLIENTS at a time → the last `sent` (ms from the first POST). */
async function httpSend(httpUrl) {
  const db = await reader(DB);
  const seq0 = db.prepare(`SELECT coalesce(max(seq), 0) FROM wa_outbox`).pluck().get();
  const cursor0 = await lastCursor(DB);
  let next = 0;
  let errors = 0;
  const t0 = Date.now();
  const worker = async () => {
    while (next < MESSAGES) {
      const i = next++;
      const response = await fetch(`${httpUrl}/sessions/a/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to: `+${CONTACT}`, text: `http ${i}` }),
      });
      const body = await response.text();
      if (response.status !== 202) {
        errors++;
        if (errors === 1) console.log(`\n  POST answered ${response.status}: ${body}`);
      }
    }
  };
  await Promise.all(Array.from({ length: HTTP_CLIENTS }, worker));
  const acceptMs = Date.now() - t0;
  if (errors) throw new Error(`${errors} of ${MESSAGES} POSTs were not 202`);
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
      if (failed > 0) throw new Error(`${failed} messages rejected, unknown or cancelled`);
      return done.get(seq0);
    },
    MESSAGES,
    'wa serve sending (c)',
  );
  const last = db
    .prepare(
      `SELECT max(at) FROM wa_events WHERE cursor > ? AND session_id = 'a' AND type = 'status'
         AND json_extract(data, '$.status') = 'sent'`,
    )
    .pluck()
    .get(cursor0);
  return { ms: ms(last) - t0, acceptMs };
}

/** (c), wa send: SENDS processes one after another (default --wait sent), each delegated to the daemon. */
async function waSends(server) {
  const walls = [];
  const t0 = Date.now();
  for (let i = 0; i < SENDS; i++) {
    const res = await runProcess(RUN, [WA, 'send', '--json', 'a', `+${CONTACT}`, `cli ${i}`], waEnv(server, DB));
    if (res.code !== 0) throw new Error(`wa send exited ${res.code}: ${res.stderr}`);
    walls.push(res.exitedAt - res.startedAt);
  }
  return { ms: Date.now() - t0, p50: median(walls) };
}

/** (c), plain: a sendMessage loop on one open socket → the last server ack (ms from the first sendMessage). */
async function plainSend(server, folder) {
  let result;
  const res = await runProcess(
    RUN,
    [PLAIN_SCRIPT],
    plainEnv(server, folder, { TO: CONTACT_JID, COUNT: String(MESSAGES) }),
    (line) => {
      if (line.includes('"done"')) result = JSON.parse(line);
    },
  );
  if (res.code !== 0 || !result) throw new Error(`plain send loop exited ${res.code}: ${res.stdout} ${res.stderr}`);
  return { ms: result.last - result.first, writeMs: result.written - result.first, errors: result.errors };
}

async function sending(server, folder) {
  const daemon = serve(server, DB, 'serve-send', ['a', '--http', '127.0.0.1:0']);
  try {
    const started = await daemon.waitFor((l) => l.msg === 'wa serve started', 'its start line');
    const httpUrl = started.http;
    if (typeof httpUrl !== 'string')
      throw new Error(`wa serve started without an HTTP address: ${JSON.stringify(started)}`);
    await daemon.waitOpen(['a']);
    // Warm-up: one send each way, so every side's socket has sent before (Signal sessions, device lists).
    const warm = await fetch(`${httpUrl}/sessions/a/messages?wait=sent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: `+${CONTACT}`, text: 'warm-up http' }),
    });
    if (warm.status !== 200) throw new Error(`warm-up POST answered ${warm.status}: ${await warm.text()}`);
    const r = { http: [], cli: [], plain: [] };
    const stall0 = { us: cpuStallUs(), at: now() };
    process.stdout.write(
      `(c) sending, ${ROUNDS} round${ROUNDS > 1 ? 's' : ''} of HTTP ${MESSAGES} / wa send ${SENDS} / plain ${MESSAGES}:`,
    );
    for (let round = 1; round <= ROUNDS; round++) {
      r.http.push(await httpSend(httpUrl));
      r.cli.push(await waSends(server));
      r.plain.push(await plainSend(server, folder));
      const rate = (n, o) => fmt((n / o.ms) * 1000, 1);
      process.stdout.write(
        ` ${round}: ${rate(MESSAGES, r.http.at(-1))}/${rate(SENDS, r.cli.at(-1))}/${rate(MESSAGES, r.plain.at(-1))} per s`,
      );
    }
    console.log('');
    r.stall = ((cpuStallUs() - stall0.us) / 1e3 / (now() - stall0.at)) * 100;
    await daemon.stop();
    r.errors = daemon.errors;
    return r;
  } finally {
    if (!daemon.exited) daemon.child.kill('SIGKILL');
  }
}

/** (d): one program with `expect` sessions → VmRSS samples after it has all open and has settled. */
async function rssOf(program, expect, ids) {
  if (expect > 0) {
    if (program.name.startsWith('lib')) await program.waitFor((l) => l.msg === 'all open', 'all open', 180_000);
    else await program.waitOpen(ids, 180_000);
  } else {
    await program.waitFor((l) => l.msg === 'wa serve started' || l.msg === 'started', 'its start', 60_000);
  }
  // The settle, sampled: its last RSS_SAMPLES are the figure without a forced collection.
  const settle = [];
  for (let i = 0; i < SETTLE_S; i++) {
    await sleep(1000);
    settle.push(rssKb(program.pid));
  }
  program.child.kill('SIGUSR2'); // GC_PRELOAD: a full collection
  const gc = await program.waitFor((l) => l.msg === 'bench gc', 'the forced collection', 10_000);
  await sleep(1000);
  const samples = [];
  for (let i = 0; i < RSS_SAMPLES; i++) {
    samples.push(rssKb(program.pid));
    await sleep(1000);
  }
  if (process.env.RSS_TRACE)
    console.log(
      `\n${program.name}: ${[...settle, '|gc|', ...samples].map((k) => (typeof k === 'number' ? Math.round(k / 1024) : k)).join(' ')}`,
    );
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    heapUsedKb: gc.heapUsed / 1024,
    noGc: median(settle.slice(-RSS_SAMPLES)),
  };
}

async function rss(server) {
  const r = {};
  const ids = Array.from({ length: SESSIONS }, (_, i) => `r${String(i).padStart(3, '0')}`);
  process.stdout.write(`(d) RSS: pairing ${SESSIONS} sessions…`);
  const tp = Date.now();
  await pairAll(
    server,
    RSS_DB,
    ids.map((id, i) => [id, `1555${String(5100000 + i)}`]),
  );
  r.pairS = (Date.now() - tp) / 1000;
  process.stdout.write(` ${fmt(r.pairS, 1)} s; first connections…`);
  await warmUp(server, RSS_DB, ids, 'serve-rss-warm-up');
  // The fixed cost of each program, both at once on databases of their own (they only idle).
  process.stdout.write(` done; 0 sessions…`);
  const emptyLib = libraryBot(server, join(ROOT, 'empty-lib.db'), 'lib-empty', 0);
  const emptyServe = rssServe(server, join(ROOT, 'empty-serve.db'), 'serve-empty');
  [r.libZero, r.serveZero] = await Promise.all([rssOf(emptyLib, 0, []), rssOf(emptyServe, 0, [])]);
  await Promise.all([emptyLib.stop(), emptyServe.stop()]);
  // Then R sessions, one program at a time: the library first, then wa serve takes the released leases.
  process.stdout.write(` startSessions() with ${SESSIONS}…`);
  const lib = libraryBot(server, RSS_DB, 'lib-rss', SESSIONS);
  r.lib = await rssOf(lib, SESSIONS, ids);
  r.libOnline = (await server.get('/devices')).filter((d) => d.online && !d.removed).length;
  await lib.stop();
  process.stdout.write(` wa serve with ${SESSIONS}…`);
  const daemon = rssServe(server, RSS_DB, 'serve-rss');
  r.serve = await rssOf(daemon, SESSIONS, ids);
  r.serveOnline = (await server.get('/devices')).filter((d) => d.online && !d.removed).length;
  r.serveReconnects = [...daemon.opened.values()].filter((n) => n > 1).length;
  await daemon.stop();
  r.errors = daemon.errors + lib.errors;
  console.log(' done');
  return r;
}

// ------------------------------------------------------------------------------------------------- main
const LOAD_AT_START =
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ') + `, CPU pressure avg60 ${psiAvg60()} %`;

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
    `mode: ${QUICK ? 'quick' : 'full'}: (a) ${RATE}/s for ${DURATION_S} s, (b) ${OUTAGE_S} s outage at ${OUT_RATE}/s, ` +
      `(c) ${MESSAGES} HTTP / ${SENDS} wa send / ${MESSAGES} plain × ${ROUNDS}, (d) ${SESSIONS} sessions, settle ${SETTLE_S} s; only ${[...ONLY].join(',')}`,
  );
  console.log(
    `wa timing (defaults): webhook poll ${DEFAULT_TIMING.webhookPollMs} ms, backoff base ${DEFAULT_TIMING.webhookBaseMs} ms ` +
      `cap ${DEFAULT_TIMING.webhookCapMs / 1000} s, request timeout ${DEFAULT_TIMING.webhookTimeoutMs / 1000} s; outbox poll ${OUTBOX_POLL_MS} ms`,
  );

  const server = await startServerProcess(RUN, { known: [CONTACT], quiet: true });
  console.log(`test server: pid ${server.pid}, ${server.url}, contact ${CONTACT} (a simulated phone)`);

  let hooks;
  let sendR;
  let rssR;
  const folder = join(ROOT, 'auth-p');
  if (ONLY.has('a') || ONLY.has('b') || ONLY.has('c')) {
    const tp = Date.now();
    await pairAll(server, DB, [
      ['a', BOT_WA],
      ['p', BOT_PLAIN],
    ]);
    process.stdout.write(`paired a (wa) and p (plain) in ${fmt((Date.now() - tp) / 1000, 1)} s; first connections…`);
    await warmUp(server, DB, ['a', 'p'], 'serve-warm-up');
    const exported = await runProcess(RUN, [WA, 'export', 'p', folder], { ...BASE_ENV, WA_DB: DB });
    if (exported.code !== 0) throw new Error(`wa export p exited ${exported.code}: ${exported.stderr}`);
    console.log(' done; p exported');
    if (ONLY.has('a') || ONLY.has('b')) hooks = await webhooks(server);
    if (ONLY.has('c')) sendR = await sending(server, folder);
  }
  if (ONLY.has('d')) rssR = await rss(server);

  // --- report
  const W = 52;
  const header = (a, b, c, d = '') => console.log(`  ${padR('', W)}${padL(a, 12)}${padL(b, 12)}${padL(c, 12)}   ${d}`);
  const row = (label, a, b = '', c = '', d = '') =>
    console.log(`  ${padR(label, W)}${padL(a, 12)}${padL(b, 12)}${padL(c, 12)}   ${d}`);
  console.log('');
  console.log('results');
  if (hooks?.a) {
    const a = hooks.a;
    const p99 = pct(a.latencies, 99);
    console.log(
      `(a) webhook latency, ${a.count} messages at ${fmt(a.rate, 1)}/s (phone asked → the receiver has the POST), ms`,
    );
    header('p50', 'p99', 'max');
    row(
      'phone asked → POST received',
      fmt(pct(a.latencies, 50), 1),
      fmt(p99, 1),
      fmt(Math.max(...a.latencies), 1),
      `target p99 < 100 ms: ${p99 < 100 ? 'met' : 'NOT met'}`,
    );
    row(
      '  the admin call (encrypt, route)',
      fmt(pct(a.callMs, 50), 1),
      fmt(pct(a.callMs, 99), 1),
      fmt(Math.max(...a.callMs), 1),
      '(test server; part of the above)',
    );
    row(
      '  call returned → POST received',
      fmt(pct(a.afterReturn, 50), 1),
      fmt(pct(a.afterReturn, 99), 1),
      fmt(Math.max(...a.afterReturn), 1),
      "(≈ wa's part: socket → store → poll → POST)",
    );
    row(
      '  phone asked → event stored (its `at`)',
      fmt(pct(a.toStored, 50), 1),
      fmt(pct(a.toStored, 99), 1),
      fmt(Math.max(...a.toStored), 1),
      '(capture: socket → decrypt → one transaction)',
    );
    row(
      '  event stored → POST received',
      fmt(pct(a.storedToPost, 50), 1),
      fmt(pct(a.storedToPost, 99), 1),
      fmt(Math.max(...a.storedToPost), 1),
      '(webhooks: poll → read → sign → POST)',
    );
    const gap = pct(a.backToBack, 50);
    row(
      '  back to back while behind: POST → next POST',
      fmt(gap, 1),
      fmt(pct(a.backToBack, 99), 1),
      fmt(Math.max(...a.backToBack), 1),
      `${a.backToBack.length} pairs; p50 = ${fmt(1000 / gap, 0)} POSTs/s (the arrivals: ${RATE}/s)`,
    );
    console.log(`    p99 in each 5 s of the run: ${a.windows.map((v) => fmt(v, 0)).join(', ')} ms`);
    row('received / sent', `${a.received}/${a.count}`, '', '', a.received === a.count ? 'all' : 'MISSING some');
    console.log(
      `  admin calls in flight at most ${a.maxInFlight}; this process's schedule slipped at most ${fmt(a.slip, 1)} ms; ` +
        `CPU meanwhile: wa serve ${fmt(a.cpu.wa, 0)} %, test server ${fmt(a.cpu.server, 0)} % of a core; ` +
        `this process's event-loop delay p99 ${fmt(a.cpu.benchLoopP99, 1)} ms, max ${fmt(a.cpu.benchLoopMax, 1)} ms; ` +
        `CPU pressure (PSI "some": a task waiting for a CPU) ${fmt(a.cpu.stall, 0)} % of the time`,
    );
  }
  if (hooks?.b) {
    const b = hooks.b;
    console.log(
      `(b) backlog after a ${fmt(b.outageMs / 1000, 1)} s receiver outage (503), ${b.count} messages at ${OUT_RATE}/s meanwhile`,
    );
    row('events in the backlog at the recovery', String(b.backlogEvents), '', '', `${b.deliveredBacklog} delivered`);
    row(
      'failed attempts during the outage',
      String(b.failedAttempts),
      '',
      '',
      `on ${b.failedCursors} event(s): the first one holds the rest back`,
    );
    row(
      'recovery → first successful POST, s',
      fmt(b.firstMs / 1000, 2),
      '',
      '',
      `scheduled at the last failure: ${fmt(b.scheduledMs / 1000, 2)} s after the recovery`,
    );
    row(
      '  the bound: the last delay drawn below, s',
      fmt(b.ceilingMs / 1000, 0),
      '',
      '',
      `min(${DEFAULT_TIMING.webhookCapMs / 60_000} min, ${DEFAULT_TIMING.webhookBaseMs / 1000} s × 2^(attempts−1)), attempts ${b.attemptsStored}`,
    );
    row('drain: first → last backlog POST, s', fmt(b.drainMs / 1000, 2));
    row('drain rate, events/s', fmt(b.drainRate, 1), '', '', 'one POST at a time, each after the one before it');
    row('(b) messages missing at the receiver', String(b.missing), '', '', b.missing === 0 ? 'none' : 'MISSING');
  }
  if (hooks) {
    const c = hooks.checks;
    const ok = c.outOfOrder === 0 && c.missing === 0 && c.badSignatures === 0;
    console.log(
      `  checks over (a)+(b): ${ok ? 'ok' : 'FAILED'} — ${c.posts} successful POSTs, out of cursor order ${c.outOfOrder}, ` +
        `duplicates ${c.duplicates}; stored events of the session ${c.stored}, never delivered ${c.missing}; ` +
        `bad signatures ${c.badSignatures}; wa serve error lines ${c.errors}` +
        [...c.warnings].map(([m, n]) => `; warn ${n}× ${m}`).join('') +
        (c.failures.size ? ` (${[...c.failures].map(([e, n]) => `${n}× ${e}`).join(', ')})` : ''),
    );
  }
  if (sendR) {
    const med = (runs) => median(runs.map((r) => r.ms));
    const httpRate = (MESSAGES / med(sendR.http)) * 1000;
    const cliRate = (SENDS / med(sendR.cli)) * 1000;
    const plainRate = (MESSAGES / med(sendR.plain)) * 1000;
    console.log(
      `(c) sending into one session, until WhatsApp's server acked each (median of ${ROUNDS} round${ROUNDS > 1 ? 's' : ''})`,
    );
    header('messages', 'time (s)', 'per second', 'vs plain (throughput ratio)');
    row(
      `HTTP POST …/messages, ${HTTP_CLIENTS} clients → all sent`,
      String(MESSAGES),
      fmt(med(sendR.http) / 1000, 2),
      fmt(httpRate, 1),
      x(httpRate / plainRate),
    );
    row(
      '  of which: every POST answered 202',
      '',
      fmt(median(sendR.http.map((r) => r.acceptMs)) / 1000, 2),
      fmt((MESSAGES / median(sendR.http.map((r) => r.acceptMs))) * 1000, 1),
    );
    row(
      '`wa send` processes, one after another',
      String(SENDS),
      fmt(med(sendR.cli) / 1000, 2),
      fmt(cliRate, 1),
      `${x(cliRate / plainRate)} (HTTP is ${x(httpRate / cliRate)} wa send; one takes ${fmt(median(sendR.cli.map((r) => r.p50)), 0)} ms)`,
    );
    row(
      'plain Baileys: sendMessage loop → all acks',
      String(MESSAGES),
      fmt(med(sendR.plain) / 1000, 2),
      fmt(plainRate, 1),
      `1.00x (the write loop: ${fmt(median(sendR.plain.map((r) => r.writeMs)) / 1000, 2)} s; error acks ${sendR.plain.reduce((n, r) => n + r.errors, 0)})`,
    );
    if (ROUNDS > 1)
      console.log(
        `    each round (HTTP, wa send, plain per second): ` +
          sendR.http
            .map(
              (h, i) =>
                `${fmt((MESSAGES / h.ms) * 1000, 1)}, ${fmt((SENDS / sendR.cli[i].ms) * 1000, 1)}, ${fmt((MESSAGES / sendR.plain[i].ms) * 1000, 1)}`,
            )
            .join(';  '),
      );
    console.log(
      `  wa serve error lines ${sendR.errors}; CPU pressure (PSI "some") over (c): ${fmt(sendR.stall, 0)} % of the time`,
    );
  }
  if (rssR) {
    const libPer = (rssR.lib.median - rssR.libZero.median) / SESSIONS;
    const servePer = (rssR.serve.median - rssR.serveZero.median) / SESSIONS;
    const per = (r, zero, key) => (r[key] - zero[key]) / SESSIONS;
    console.log(
      `(d) VmRSS, ${SESSIONS} sessions open (MB; a ${SETTLE_S} s settle, a forced full GC, then the median of ${RSS_SAMPLES} samples 1 s apart)`,
    );
    header('startSessions', 'wa serve', 'lib/serve');
    row('RSS per open session', fmt(mb(libPer), 2), fmt(mb(servePer), 2), x(libPer / servePer));
    row(
      `  RSS with ${SESSIONS} open`,
      fmt(mb(rssR.lib.median), 1),
      fmt(mb(rssR.serve.median), 1),
      x(rssR.lib.median / rssR.serve.median),
    );
    row(
      '    min–max',
      `${fmt(mb(rssR.lib.min), 1)}–${fmt(mb(rssR.lib.max), 1)}`,
      `${fmt(mb(rssR.serve.min), 1)}–${fmt(mb(rssR.serve.max), 1)}`,
    );
    row('  RSS with 0 sessions (subtracted)', fmt(mb(rssR.libZero.median), 1), fmt(mb(rssR.serveZero.median), 1));
    const libHeap = per(rssR.lib, rssR.libZero, 'heapUsedKb');
    const serveHeap = per(rssR.serve, rssR.serveZero, 'heapUsedKb');
    row('V8 heap used per session, after the GC', fmt(mb(libHeap), 2), fmt(mb(serveHeap), 2), x(libHeap / serveHeap));
    const libNoGc = per(rssR.lib, rssR.libZero, 'noGc');
    const serveNoGc = per(rssR.serve, rssR.serveZero, 'noGc');
    row(
      'RSS per session without the forced GC',
      fmt(mb(libNoGc), 2),
      fmt(mb(serveNoGc), 2),
      x(libNoGc / serveNoGc),
      `(the settle's last ${RSS_SAMPLES} s; garbage decides it)`,
    );
    row("server's online devices while sampled", `${rssR.libOnline}/${SESSIONS}`, `${rssR.serveOnline}/${SESSIONS}`);
    console.log(
      `  paired in ${fmt(rssR.pairS, 1)} s; wa serve sessions that reconnected: ${rssR.serveReconnects}; error lines ${rssR.errors}`,
    );
  }
  console.log('');
  console.log('what limits the figures');
  console.log(
    `  (a) the webhook poll: one lastCursor() every ${DEFAULT_TIMING.webhookPollMs} ms (README "Webhooks", "Cost"), so ~${DEFAULT_TIMING.webhookPollMs / 2} ms on average\n` +
      `      before a stored event is seen; then one read, one POST and one position write per event, in order.\n` +
      `      The POSTs are serial per session (README "Webhooks", "Order"): the next one starts after the answer and\n` +
      `      the position write, so the webhook's rate is 1 / (round trip + write) — the back-to-back row, a few hundred\n` +
      `      a second while wa serve and the receiver both get a CPU at once. Each inbound message also costs wa serve\n` +
      `      three SQLite transactions on its main thread (synchronous=FULL: the Signal session's key write, the message\n` +
      `      and its event, the webhook position: about half its busy time in a --cpu-prof run). On a contended machine\n` +
      `      (high PSI) every round trip waits for two processes to be scheduled, the rate falls below a ${RATE}/s stream,\n` +
      `      and the lag grows as a queue until the contention passes (the p99-per-5-s line).`,
  );
  console.log(
    `  (b) full jitter: after the n-th failure the next attempt waits uniformly below min(${DEFAULT_TIMING.webhookCapMs / 60_000} min, ` +
      `${DEFAULT_TIMING.webhookBaseMs / 1000} s × 2^(n−1)); an outage of T s\n` +
      `      sees about log2(T) + 1 attempts, and the attempt after the recovery can be up to that last ceiling away (0 s at best).\n` +
      `      Then the backlog goes one POST at a time (README "Webhooks", "Order"): the drain rate is 1 / (POST + position write).`,
  );
  console.log(
    `  (c) the outbox sends one message at a time per session and waits for its ack before the next (README "Sending\n` +
      `      messages"); the plain loop pipelines every write. wa send adds a process start per message (handed to the owner, it loads no Baileys).`,
  );
  console.log(
    `  (d) both run the same session manager (src/daemon/session-manager.ts); RSS after a full GC still swings by a few MB\n` +
      `      (malloc arenas, socket buffers), so the per-session RSS is trustworthy only when R sessions add well above that;\n` +
      `      the V8 heap per session is the stable figure.`,
  );
  console.log(
    `\nload average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, CPU pressure avg60 ${psiAvg60()} % (at the start: ${LOAD_AT_START})` +
      (benchUnhandled ? `; ${benchUnhandled} unhandled rejections while pairing (ignored)` : ''),
  );
  console.log(`total ${fmt((Date.now() - t0) / 1000, 1)} s`);
}

try {
  await main();
} catch (error) {
  console.error(`\nbench:gateway failed: ${error instanceof Error ? error.stack : error}`);
  process.exitCode = 1;
} finally {
  for (const db of dbs.values()) db.close();
  RUN.cleanup();
  process.exit(process.exitCode ?? 0);
}
