// bench:serve — what `wa serve` costs with N paired sessions, against the loopback WhatsApp test server,
// next to the baseline a user would otherwise write: N bare Baileys sockets in one node process, each on
// its own useMultiFileAuthState folder (exported with `wa export`), reconnecting README-style.
//
//   (a) spawn → all N sessions open
//   (b) RSS per open session: (VmRSS with N open after a settle − VmRSS of the same program with 0 sessions) / N
//   (c) CPU over a quiet window (utime+stime from /proc/<pid>/stat), % of one core
//   (d) server restart (down for a moment) → all N open again, and how many connection attempts it took
//   (e) a redeploy: wa serve overlapping (a second daemon waits, the first gets SIGTERM, README "Deploying")
//       vs the bare program stopped and started again (it has no leases: overlapping would log in twice);
//       the gap per session is the server's own time from the old login's close to the new login
//
// The test server runs in its own process (test/wa-server/cli.js), driven through its HTTP admin API, so
// its CPU is counted against neither side. Sessions are paired in this process through the library
// (dist/index.js useSqliteAuthState + the real Baileys client), a few at a time, like test/helpers/pair.ts.
// `wa serve` runs with its defaults (no WA_TIMING): keep-alive 30 s, connect pacing from 5/s ramping to
// 50/s while connects succeed, backoff base 1 s.
//
// Prints figures and ratios; never asserts timings (the machine is noisy). Linux only (/proc).
// Usage: npm run bench:serve [-- --sessions N] [-- --quick] [--quiet-seconds S] [--settle-seconds S]
//        [--down-ms MS] [--pair-concurrency K] [--keep]      (or: npm run build && node bench/serve.js …)

import { pairDevice } from '../test/support/pair-device.js';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  benchRun,
  CLK_TCK,
  cpuSeconds,
  eachLine,
  median,
  PROJECT,
  rssKb,
  startServer as startTestServerProcess,
  WA,
  waEnv as waEnvFor,
} from './harness.js';

const { values: opts } = parseArgs({
  options: {
    sessions: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'quiet-seconds': { type: 'string' },
    'settle-seconds': { type: 'string' },
    'down-ms': { type: 'string' },
    'pair-concurrency': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const QUICK = opts.quick;
const N = Number(opts.sessions ?? (QUICK ? 20 : 100));
const QUIET_S = Number(opts['quiet-seconds'] ?? (QUICK ? 15 : 60));
// 25 s, not 10: on a session's first connection Baileys waits up to 20 s for a history-sync notification
// (the test server sends none), then flushes its event buffer and writes creds (accountSyncCounter). The
// settle covers that for both programs, so the quiet window is quiet.
const SETTLE_S = Number(opts['settle-seconds'] ?? 25);
const IDLE_SETTLE_S = Math.min(SETTLE_S, 10); // the 0-session programs have nothing to wait for
const DOWN_MS = Number(opts['down-ms'] ?? 2000);
const PAIR_CONCURRENCY = Number(opts['pair-concurrency'] ?? 5);
for (const [name, v] of Object.entries({ N, QUIET_S, SETTLE_S, DOWN_MS, PAIR_CONCURRENCY }))
  if (!Number.isFinite(v) || v < (name === 'N' || name === 'PAIR_CONCURRENCY' ? 1 : 0))
    throw new Error(`bad ${name}: ${v}`);
const WA_CONNECTS_PER_SECOND = 5; // DEFAULT_TIMING.connectsPerSecond in src/config.ts (checked against dist below)
// Generous: the worst case is the pacing never ramping (a failing server), at the start rate.
const OPEN_TIMEOUT_MS = Math.max(120_000, (N / WA_CONNECTS_PER_SECOND) * 4000);

// ------------------------------------------------------------------------------- processes and cleanup
const RUN = benchRun('wa-bench-serve-', { keep: opts.keep });
const ROOT = RUN.root;
const DB = join(ROOT, 'wa.db');
const BASE_ENV = RUN.baseEnv;
// Baileys fires promises it never awaits; when a socket closes under them they reject unhandled. While
// pairing in this process they are harmless: count them instead of dying.
let benchUnhandled = 0;
process.on('unhandledRejection', () => benchUnhandled++);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

// --------------------------------------------------------------------------------------- the test server
const startServer = () => startTestServerProcess(RUN);

// ------------------------------------------------------------------------------------------------ pairing
/** Pairs `id` with phone `phone` in this process: QR → the phone scans it → 515 → first login (812 pre-keys). */
async function pairOne(lib, server, id, phone) {
  const auth = await lib.useSqliteAuthState(DB, id);
  try {
    await pairDevice({
      baileys: lib.baileys,
      auth,
      url: server.url,
      logger: lib.silent,
      scan: (qr) => server.post('/scan-qr', { qr, phone: { number: phone, name: id } }),
    });
  } finally {
    await auth.close();
  }
}

async function pairAll(server, ids) {
  const baileys = await import('@whiskeysockets/baileys');
  const { default: pino } = await import('pino');
  const { useSqliteAuthState } = await import('../dist/index.js');
  baileys.WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(server.rootPublicKey, 'base64');
  const lib = { baileys, silent: pino({ level: 'silent' }), useSqliteAuthState };
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      await pairOne(lib, server, ids[i], `1555${String(2000000 + i)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PAIR_CONCURRENCY, ids.length) }, worker));
}

async function waitForServerIdle(server, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await server.get('/state');
    if (state.openConnections === 0) return state;
    if (Date.now() > deadline) return state;
    await sleep(200);
  }
}

// ------------------------------------------------------------------------------------ watched processes
/**
 * A spawned program that prints JSON lines `{session, msg: 'connection open'}` (wa serve's pino log; the
 * baseline script prints the same). Records when (in this process's clock) each session last opened.
 */
class Watched {
  constructor(name, command, args, env, logFile) {
    this.name = name;
    this.spawnedAt = now();
    this.child = RUN.track(spawn(command, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] }));
    this.pid = this.child.pid;
    this.lines = [];
    this.lastOpen = new Map();
    this.stderr = '';
    this.exit = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal, at: now() })));
    this.exited = false;
    void this.exit.then(() => (this.exited = true));
    eachLine(this.child.stdout, (line) => {
      const at = now();
      appendFileSync(logFile, line + '\n');
      if (!line.startsWith('{')) return;
      let parsed;
      try {
        parsed = JSON.parse(line);
      } catch {
        return;
      }
      parsed.at = at;
      this.lines.push(parsed);
      if (parsed.msg === 'connection open' && typeof parsed.session === 'string') this.lastOpen.set(parsed.session, at);
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk) => {
      this.stderr += chunk;
      appendFileSync(logFile, chunk);
    });
    this.logFile = logFile;
  }

  tail() {
    const text = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
    return text.split('\n').slice(-25).join('\n');
  }

  async waitForLine(predicate, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(predicate);
      if (found) return found;
      if (this.exited) throw new Error(`${this.name} exited early:\n${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`${this.name}: no expected line within ${timeoutMs} ms:\n${this.tail()}`);
      await sleep(50);
    }
  }

  /** Resolves with the time the last of `ids` opened after `since` (the exact receipt time of that line). */
  async waitAllOpen(ids, since, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let last = -Infinity;
      let open = 0;
      for (const id of ids) {
        const at = this.lastOpen.get(id);
        if (at !== undefined && at > since) {
          open++;
          if (at > last) last = at;
        }
      }
      if (open === ids.length) return last;
      if (this.exited) throw new Error(`${this.name} exited with ${open}/${ids.length} open:\n${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`${this.name}: ${open}/${ids.length} open after ${timeoutMs} ms:\n${this.tail()}`);
      await sleep(25);
    }
  }

  /** Lines received in (from, to]. */
  between(from, to = Infinity) {
    return this.lines.filter((l) => l.at > from && l.at <= to);
  }

  async stop(signal, timeoutMs = 15_000) {
    const sentAt = now();
    if (!this.exited) this.child.kill(signal);
    const result = await Promise.race([this.exit, sleep(timeoutMs).then(() => null)]);
    if (result === null) {
      this.child.kill('SIGKILL');
      return { code: null, signal: 'SIGKILL (timeout)', ms: now() - sentAt };
    }
    return { ...result, ms: result.at - sentAt };
  }
}

// ----------------------------------------------------------------------------------------- the programs
const waEnv = (server, db) => waEnvFor(BASE_ENV, server, db);

/**
 * The baseline a user would otherwise write (Baileys README "connecting" example, one function per
 * session, all in one process): useMultiFileAuthState per folder, reconnect on every close at once except
 * loggedOut, creds.update → saveCreds, a silent pino logger, the test server's URL, its root trusted. The
 * one addition is an unhandledRejection handler: without it Node 20 kills the whole process the first time
 * Baileys rejects a promise nobody awaits on a dying socket (counted and printed, see the output).
 */
const BASELINE_SCRIPT = join(ROOT, 'baseline.mjs');
writeFileSync(
  BASELINE_SCRIPT,
  `// generated by bench/serve.js
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const require = createRequire(${JSON.stringify(join(PROJECT, 'package.json'))});
const baileys = await import(pathToFileURL(require.resolve('@whiskeysockets/baileys')).href);
const { default: pino } = await import(pathToFileURL(require.resolve('pino')).href);
const { useMultiFileAuthState, DisconnectReason, WA_CERT_DETAILS } = baileys;
const makeWASocket = baileys.makeWASocket ?? baileys.default;
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(process.env.ROOT_PUBLIC_KEY, 'base64');
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
process.on('unhandledRejection', (err) => emit({ msg: 'unhandledRejection', err: String(err?.message ?? err) }));

async function connectToWhatsApp(id, folder) {
  const { state, saveCreds } = await useMultiFileAuthState(folder);
  const sock = makeWASocket({ auth: state, logger: pino({ level: 'silent' }), waWebSocketUrl: process.env.WS_URL });
  sock.ev.on('connection.update', (update) => {
    const { connection, lastDisconnect } = update;
    if (connection === 'close') {
      const code = lastDisconnect?.error?.output?.statusCode;
      const shouldReconnect = code !== DisconnectReason.loggedOut;
      emit({ session: id, msg: 'connection closed', code, reconnect: shouldReconnect });
      if (shouldReconnect) connectToWhatsApp(id, folder);
    } else if (connection === 'open') {
      emit({ session: id, msg: 'connection open' });
    }
  });
  sock.ev.on('creds.update', saveCreds);
}

const sessions = JSON.parse(readFileSync(process.env.SESSIONS_FILE, 'utf8'));
for (const [id, folder] of sessions) connectToWhatsApp(id, folder);
emit({ msg: 'started', sessions: sessions.length });
process.stdin.on('end', () => process.exit(0)); // dies with the benchmark
process.stdin.resume();
`,
);

function startBaseline(server, sessions, label) {
  const file = join(ROOT, `baseline-${label}.json`);
  writeFileSync(file, JSON.stringify(sessions));
  return new Watched(
    `baseline (${label})`,
    process.execPath,
    [BASELINE_SCRIPT],
    { ...BASE_ENV, ROOT_PUBLIC_KEY: server.rootPublicKey, WS_URL: server.url, SESSIONS_FILE: file },
    join(ROOT, `baseline-${label}.log`),
  );
}

function startDaemon(server, db, label) {
  return new Watched(
    `wa serve (${label})`,
    process.execPath,
    [WA, 'serve'],
    waEnv(server, db),
    join(ROOT, `serve-${label}.log`),
  );
}

/** Runs `wa export <id> <dir>` for every session, a few processes at a time. */
async function exportAll(ids) {
  const folders = ids.map((id) => join(ROOT, 'auth', id));
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      const child = RUN.track(
        spawn(process.execPath, [WA, 'export', ids[i], folders[i]], {
          cwd: ROOT,
          env: { ...BASE_ENV, WA_DB: DB },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (c) => (err += c));
      child.stdout.resume();
      const code = await new Promise((resolve) => child.on('exit', resolve));
      if (code !== 0) throw new Error(`wa export ${ids[i]} exited ${code}: ${err}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, ids.length) }, worker));
  return ids.map((id, i) => [id, folders[i]]);
}

// ------------------------------------------------------------------------------------------ measurement
/**
 * RSS and CPU of a program holding 0 sessions (its fixed cost, subtracted in (b)): VmRSS sampled every
 * second over the settle, the median of the second half; CPU over the whole settle.
 */
async function measureIdle(watched, readyPredicate) {
  await watched.waitForLine(readyPredicate, 60_000);
  const cpu0 = cpuSeconds(watched.pid);
  const t0 = now();
  const samples = [];
  for (let i = 0; i < IDLE_SETTLE_S; i++) {
    await sleep(1000);
    samples.push(rssKb(watched.pid));
  }
  const cpu = ((cpuSeconds(watched.pid) - cpu0) / ((now() - t0) / 1000)) * 100;
  return { rss: median(samples.slice(samples.length >> 1)), last: samples.at(-1), cpu };
}

/** (a), (b), (c), (d) for one program. `stop` ends it and returns how. */
async function measure(name, ids, watched, server, serverOnline) {
  const r = { name };
  // (a)
  r.allOpenAt = await watched.waitAllOpen(ids, -Infinity, OPEN_TIMEOUT_MS);
  r.openS = (r.allOpenAt - watched.spawnedAt) / 1000;
  const opens = watched.lines.filter((l) => l.msg === 'connection open');
  r.firstOpenS = (Math.min(...opens.map((l) => l.at)) - watched.spawnedAt) / 1000;
  r.connectMs = opens.map((l) => l.ms).filter((ms) => typeof ms === 'number');
  process.stdout.write(`  ${name}: all ${ids.length} open after ${r.openS.toFixed(1)} s; settling ${SETTLE_S} s…`);
  // (b)
  await sleep(SETTLE_S * 1000);
  r.rss = rssKb(watched.pid);
  // (c)
  process.stdout.write(` quiet ${QUIET_S} s…`);
  const quietFrom = now();
  const cpu0 = cpuSeconds(watched.pid);
  const serverCpu0 = cpuSeconds(server.pid);
  const rssSamples = [];
  while (now() - quietFrom < QUIET_S * 1000) {
    await sleep(Math.min(1000, QUIET_S * 1000 - (now() - quietFrom)));
    rssSamples.push(rssKb(watched.pid));
  }
  const quietS = (now() - quietFrom) / 1000;
  r.cpu = ((cpuSeconds(watched.pid) - cpu0) / quietS) * 100;
  r.serverCpu = ((cpuSeconds(server.pid) - serverCpu0) / quietS) * 100;
  r.rssQuiet = { median: median(rssSamples), max: Math.max(...rssSamples) };
  r.quietCloses = watched.between(quietFrom).filter((l) => isClose(l)).length;
  r.onlineBeforeRestart = await serverOnline();
  // (d)
  process.stdout.write(` restart (down ${DOWN_MS} ms)…`);
  const restartAt = now();
  const connectionsBefore = (await server.get('/connection-log')).length;
  await server.post('/restart', { downMs: DOWN_MS });
  r.serverBackS = (now() - restartAt) / 1000;
  r.backAt = await watched.waitAllOpen(ids, restartAt, OPEN_TIMEOUT_MS);
  r.backS = (r.backAt - restartAt) / 1000;
  r.restartCloses = watched.between(restartAt, r.backAt).filter((l) => isClose(l)).length;
  const log = await server.get('/connection-log');
  r.restartAttempts = log.length - connectionsBefore;
  r.restartLogins = log.slice(connectionsBefore).filter((e) => e.outcome === 'login').length;
  await sleep(1000);
  r.onlineAfterRestart = await serverOnline();
  r.unhandled = watched.lines.filter(
    (l) => l.msg === 'unhandledRejection' || /unhandled rejection/.test(l.msg ?? ''),
  ).length;
  r.errors = watched.lines.filter((l) => typeof l.level === 'number' && l.level >= 50).length;
  r.warnings = watched.lines.filter((l) => l.level === 40).length;
  // What the program complained about, grouped: message (and status code) → count.
  r.complaints = new Map();
  for (const l of watched.lines) {
    if (!(typeof l.level === 'number' && l.level >= 40) && l.msg !== 'unhandledRejection') continue;
    const key = `${l.level >= 50 ? 'error' : l.level === 40 ? 'warn' : 'unhandled'}: ${l.msg}${l.code !== undefined ? ` (${l.code})` : ''}${l.err ? ` — ${String(l.err.message ?? l.err).slice(0, 100)}` : ''}`;
    r.complaints.set(key, (r.complaints.get(key) ?? 0) + 1);
  }
  console.log(` back after ${r.backS.toFixed(1)} s`);
  return r;
}
/** A close as either program reports it: wa's 'disconnected; …' lines, the baseline's 'connection closed'. */
const isClose = (l) =>
  l.msg === 'connection closed' ||
  (typeof l.action === 'string' && typeof l.code !== 'undefined' && l.msg !== 'connection open');

// ----------------------------------------------------------------------------------------------- redeploy
/**
 * Per device, from the server's connection log: the time from the close of the last login before `since`
 * to the first login after it (ms). A device without both is left out.
 */
async function loginGaps(server, since) {
  const log = await server.get('/connection-log');
  const byJid = new Map();
  for (const e of log) {
    if (e.outcome !== 'login' || !e.jid) continue;
    byJid.set(e.jid, [...(byJid.get(e.jid) ?? []), e]);
  }
  const gaps = [];
  let overlapping = 0;
  for (const logins of byJid.values()) {
    logins.sort((a, b) => a.at - b.at);
    const after = logins.findIndex((e) => e.at >= since);
    if (after <= 0) continue;
    const before = logins[after - 1];
    if (before.closedAt === undefined || before.closedAt > logins[after].at) overlapping++;
    else gaps.push(logins[after].at - before.closedAt);
  }
  return { gaps, overlapping };
}

/** The gap figures of a redeploy: median, p90, max (ms), and devices logged in twice at once. */
function gapStats({ gaps, overlapping }) {
  const sorted = [...gaps].sort((a, b) => a - b);
  return {
    n: gaps.length,
    median: median(sorted),
    p90: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))],
    max: sorted.at(-1),
    overlapping,
  };
}

// ------------------------------------------------------------------------------------------------ stats
const mb = (kb) => kb / 1024;
const fmt = (v, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : '—');
const padL = (s, n) => String(s).padStart(n);
const padR = (s, n) => String(s).padEnd(n);

// ------------------------------------------------------------------------------------------------- main
const LOAD_AT_START = loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');

async function main() {
  const t0 = now();
  const require = createRequire(join(PROJECT, 'package.json'));
  const version = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;
  const { DEFAULT_TIMING } = await import('../dist/config.js');
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, CLK_TCK ${CLK_TCK}`,
  );
  console.log(`baileys ${version('@whiskeysockets/baileys')}, pino ${version('pino')}, temp dir ${ROOT}`);
  console.log(
    `mode: ${QUICK ? 'quick' : 'full'}: ${N} sessions, settle ${SETTLE_S} s, quiet ${QUIET_S} s, server down ${DOWN_MS} ms on restart`,
  );
  console.log(
    `wa serve timing (defaults, no WA_TIMING): connectsPerSecond ${DEFAULT_TIMING.connectsPerSecond}, keepAliveMs ${DEFAULT_TIMING.keepAliveMs}, ` +
      `backoff base ${DEFAULT_TIMING.backoffBaseMs} ms cap ${DEFAULT_TIMING.backoffCapMs} ms, discovery ${DEFAULT_TIMING.discoveryMs} ms, lease renew ${DEFAULT_TIMING.leaseRenewMs} ms`,
  );
  const connectsPerSecond = DEFAULT_TIMING.connectsPerSecond ?? WA_CONNECTS_PER_SECOND;

  const server = await startServer();
  console.log(`test server: pid ${server.pid}, ${server.url}`);
  const serverOnline = async () => (await server.get('/devices')).filter((d) => d.online && !d.removed).length;

  // --- pair
  const ids = Array.from({ length: N }, (_, i) => `bot${String(i).padStart(3, '0')}`);
  let tp = now();
  await pairAll(server, ids);
  const pairS = (now() - tp) / 1000;
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(DB, { readonly: true });
  const paired = db.prepare(`SELECT count(*) FROM wa_sessions WHERE state = 'paired'`).pluck().get();
  const keyRows = db.prepare(`SELECT count(*) FROM whatsapp_auth`).pluck().get();
  db.close();
  const idle = await waitForServerIdle(server);
  console.log(
    `paired ${paired}/${N} sessions in-process in ${fmt(pairS)} s (${PAIR_CONCURRENCY} at a time; ${keyRows} auth rows); ` +
      `server: ${idle.devices.length} devices, ${idle.openConnections} open connections left`,
  );
  if (paired !== N) throw new Error(`only ${paired} of ${N} sessions paired`);

  // --- fixed cost of each program with 0 sessions (both at once: they only idle)
  process.stdout.write(`0-session runs (settle ${IDLE_SETTLE_S} s)…`);
  const emptyDaemon = startDaemon(server, join(ROOT, 'empty', 'wa.db'), 'empty');
  const emptyBaseline = startBaseline(server, [], 'empty');
  const [zeroWa, zeroBare] = await Promise.all([
    measureIdle(emptyDaemon, (l) => l.msg === 'wa serve started'),
    measureIdle(emptyBaseline, (l) => l.msg === 'started'),
  ]);
  await Promise.all([emptyDaemon.stop('SIGTERM'), emptyBaseline.stop('SIGKILL')]);
  console.log(` wa serve ${fmt(mb(zeroWa.rss))} MB, bare ${fmt(mb(zeroBare.rss))} MB`);

  // --- export now, so that both programs start from the same just-paired state (first connection each)
  tp = now();
  const folders = await exportAll(ids);
  console.log(`exported ${folders.length} sessions with \`wa export\` in ${fmt((now() - tp) / 1000)} s`);

  // --- wa serve
  console.log(`wa serve with ${N} sessions:`);
  const daemon = startDaemon(server, DB, 'main');
  const wa = await measure('wa serve', ids, daemon, server, serverOnline);
  // (e) the redeploy: the new daemon starts while the old one still holds every session, then the old one
  // gets SIGTERM (a Kubernetes rolling update, a Railway deploy with draining seconds).
  process.stdout.write(`  (e) redeploy: second wa serve on the same database…`);
  const next = startDaemon(server, DB, 'next');
  await next.waitForLine((l) => l.msg === 'wa serve started', 60_000);
  await sleep(2000); // it has seen every session held and is waiting for them
  wa.waitingLogged = next.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('waiting for ')).length;
  const redeployAt = Date.now();
  const redeployMono = now();
  const stopped = await daemon.stop('SIGTERM');
  wa.stop = stopped;
  await next.waitAllOpen(ids, redeployMono, OPEN_TIMEOUT_MS);
  wa.redeployS = (Math.max(...ids.map((id) => next.lastOpen.get(id))) - redeployMono) / 1000;
  wa.gap = gapStats(await loginGaps(server, redeployAt));
  console.log(` all open on the new one ${fmt(wa.redeployS)} s after the SIGTERM`);
  await next.stop('SIGTERM');
  const dbAfter = new Database(DB, { readonly: true });
  wa.leftLeases = dbAfter.prepare(`SELECT count(*) FROM wa_leases`).pluck().get();
  wa.leftOpen = dbAfter.prepare(`SELECT count(*) FROM wa_sessions WHERE connection <> 'closed'`).pluck().get();
  dbAfter.close();
  const afterStop = await waitForServerIdle(server);
  console.log(
    `  SIGTERM → exit ${stopped.code ?? stopped.signal} after ${fmt(stopped.ms / 1000, 2)} s; ` +
      `leases left ${wa.leftLeases}, sessions not 'closed' ${wa.leftOpen}; server open connections ${afterStop.openConnections}`,
  );

  // --- the baseline
  console.log(`bare Baileys, ${N} sockets in one process:`);
  const baseline = startBaseline(server, folders, 'main');
  const bare = await measure('bare Baileys', ids, baseline, server, serverOnline);
  // (e) without leases a second copy would log every device in twice (440 for both): stop, then start.
  process.stdout.write(`  (e) redeploy: stop, then start a new process…`);
  const bareRedeployAt = Date.now();
  const bareRedeployMono = now();
  bare.stop = await baseline.stop('SIGTERM');
  const bareNext = startBaseline(server, folders, 'next');
  await bareNext.waitAllOpen(ids, bareRedeployMono, OPEN_TIMEOUT_MS);
  bare.redeployS = (Math.max(...ids.map((id) => bareNext.lastOpen.get(id))) - bareRedeployMono) / 1000;
  bare.gap = gapStats(await loginGaps(server, bareRedeployAt));
  console.log(` all open ${fmt(bare.redeployS)} s after the stop`);
  await bareNext.stop('SIGKILL');
  await waitForServerIdle(server);

  // --- report
  // Headline: the median of the 1-s samples over the quiet window (RSS swings with GC; one sample can land
  // either side of a collection). The single sample at the end of the settle is shown too.
  wa.perKb = (wa.rssQuiet.median - zeroWa.rss) / N;
  bare.perKb = (bare.rssQuiet.median - zeroBare.rss) / N;
  wa.perKbSettle = (wa.rss - zeroWa.rss) / N;
  bare.perKbSettle = (bare.rss - zeroBare.rss) / N;
  const minRamp = (N - 1) / connectsPerSecond;
  const row = (label, a, b, unit, target = '', digits = 1) =>
    console.log(
      `  ${padR(label, 44)}${padL(fmt(a, digits) + unit, 12)}${padL(fmt(b, digits) + unit, 14)}${padL(ratio(a, b), 9)}   ${target}`,
    );
  console.log('');
  console.log(`results, ${N} sessions (wa/bare: lower is better for wa)`);
  console.log(`  ${padR('', 44)}${padL('wa serve', 12)}${padL('bare Baileys', 14)}${padL('wa/bare', 9)}   target`);
  const verdict = (ok) => (N === 100 ? (ok ? 'met' : 'NOT met') : `n/a, the target is for 100 sessions`);
  row(
    '(a) spawn → all open',
    wa.openS,
    bare.openS,
    ' s',
    `100 sessions ≤ 1.5x bare: ${verdict(wa.openS <= 1.5 * bare.openS)}`,
  );
  row('    spawn → first open', wa.firstOpenS, bare.firstOpenS, ' s');
  row(
    '(b) RSS per open session (quiet-window median)',
    mb(wa.perKb),
    mb(bare.perKb),
    ' MB',
    `wa ≤ bare: ${wa.perKb <= bare.perKb ? 'met' : 'NOT met'}`,
    2,
  );
  row(`    same, one sample after the ${SETTLE_S} s settle`, mb(wa.perKbSettle), mb(bare.perKbSettle), ' MB', '', 2);
  row(`    RSS, ${N} open: quiet-window median`, mb(wa.rssQuiet.median), mb(bare.rssQuiet.median), ' MB');
  row(`    RSS, ${N} open: quiet-window max`, mb(wa.rssQuiet.max), mb(bare.rssQuiet.max), ' MB');
  row(`    RSS, ${N} open: after the settle`, mb(wa.rss), mb(bare.rss), ' MB');
  row('    RSS, 0 sessions (subtracted)', mb(zeroWa.rss), mb(zeroBare.rss), ' MB');
  row(`(c) CPU over ${QUIET_S} s quiet, % of a core`, wa.cpu, bare.cpu, ' %', '', 2);
  row('    CPU with 0 sessions, % of a core', zeroWa.cpu, zeroBare.cpu, ' %', '', 2);
  row('    test server CPU meanwhile (not counted)', wa.serverCpu, bare.serverCpu, ' %', '', 2);
  row('    closes during the quiet window', wa.quietCloses, bare.quietCloses, '', '', 0);
  row(
    `(d) server restart → all open again`,
    wa.backS,
    bare.backS,
    ' s',
    `all back ≤ 90 s: ${wa.backS <= 90 ? 'met' : 'NOT met'}`,
  );
  row('    of which the restart call (down time)', wa.serverBackS, bare.serverBackS, ' s');
  row('    client closes seen until all open', wa.restartCloses, bare.restartCloses, '', '', 0);
  row('    connection attempts after the restart', wa.restartAttempts, bare.restartAttempts, '', '', 0);
  row('    logins the server saw', wa.restartLogins, bare.restartLogins, '', '', 0);
  row('(e) redeploy → all open on the new process', wa.redeployS, bare.redeployS, ' s');
  row('    gap per session: median', wa.gap.median, bare.gap.median, ' ms', '', 0);
  row('    gap per session: p90', wa.gap.p90, bare.gap.p90, ' ms', '', 0);
  row('    gap per session: max', wa.gap.max, bare.gap.max, ' ms', '', 0);
  row('    devices logged in twice at once', wa.gap.overlapping, bare.gap.overlapping, '', 'must be 0', 0);
  console.log('');
  console.log('checks');
  console.log(
    `  server's online devices: wa ${wa.onlineBeforeRestart}/${N} before the restart, ${wa.onlineAfterRestart}/${N} after; ` +
      `bare ${bare.onlineBeforeRestart}/${N}, ${bare.onlineAfterRestart}/${N}`,
  );
  console.log(
    `  wa serve: connect→open per connection median ${fmt(median(wa.connectMs), 0)} ms (min ${fmt(Math.min(...wa.connectMs), 0)}, max ${fmt(Math.max(...wa.connectMs), 0)}); ` +
      `log lines: ${wa.errors} error, ${wa.warnings} warn, ${wa.unhandled} unhandled rejections; SIGTERM exit ${wa.stop.code ?? wa.stop.signal} in ${fmt(wa.stop.ms / 1000, 2)} s`,
  );
  console.log(
    `  bare: ${bare.unhandled} unhandled rejections (each would have killed the process without the handler)` +
      (benchUnhandled ? `; pairing in this process: ${benchUnhandled} unhandled rejections ignored` : ''),
  );
  for (const r of [wa, bare])
    for (const [key, count] of r.complaints) console.log(`  ${r.name} logged ${count}× ${key}`);
  console.log('');
  console.log('what limits the figures');
  console.log(
    `  wa serve paces connects (global limiter): ${connectsPerSecond}/s to start, doubling every second of successes up to ` +
      `${DEFAULT_TIMING.maxConnectsPerSecond}/s, back to ${connectsPerSecond}/s at once on a failure (at the fixed rate, (a) would be ≥ ${fmt(minRamp)} s); ` +
      `(d) adds the down time and full-jitter backoff (base ${DEFAULT_TIMING.backoffBaseMs} ms, doubling per failed attempt) ` +
      `for the sessions that tried while the server was down, at ${connectsPerSecond}/s until connects succeed again.`,
  );
  console.log(
    `  (e) the new wa serve logged ${wa.waitingLogged} 'waiting for …' lines (one per session), polls every second, and takes ` +
      `each session once the old one has closed it and released its lease; the bare program's gap is its restart.`,
  );
  console.log(
    `  bare Baileys connects all ${N} at once and reconnects on every close at once, so while the server is down it ` +
      `retries in a tight loop (the closes and connections above); it is bounded only by CPU.`,
  );
  console.log(
    `  idle CPU is mostly keep-alive pings (every ${DEFAULT_TIMING.keepAliveMs / 1000} s per socket); wa adds a liveness watchdog tick per session (every half grace: 5 s by default), ` +
      `a lease renewal every ${DEFAULT_TIMING.leaseRenewMs / 1000} s and a discovery scan every ${DEFAULT_TIMING.discoveryMs / 1000} s. RSS includes garbage not yet collected.`,
  );
  console.log(
    `\nload average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (at the start: ${LOAD_AT_START})`,
  );
  console.log(`total ${fmt((now() - t0) / 1000)} s`);
}

try {
  await main();
} catch (error) {
  console.error(`\nbench:serve failed: ${error instanceof Error ? error.stack : error}`);
  process.exitCode = 1;
} finally {
  RUN.cleanup();
  process.exit(process.exitCode ?? 0);
}
