// bench:connect — how long `wa connect` takes as a process against the loopback WhatsApp test server:
//
//   (a) a full QR pairing: spawn `wa connect <id> --json` on a fresh database, the phone scans the first QR
//       (the server's admin API, as soon as the `qr` event arrives), 515 restart, first login (812 pre-keys
//       uploaded), open, settle, close — until exit 0;
//   (b) a paired `wa connect` (connectivity check) on that database — until exit 0.
//
// For context: `node -e 0`, and the time to import Baileys (in-process and as a whole process).
// Each run uses a fresh temp database (`wa add` before it, untimed). The test server runs in its own
// process (test/wa-server/cli.js), so its CPU (the phone's side of pairing) is not in the client's figure,
// but its latency is in the wall time, as a real phone's would be.
//
// Prints figures; never asserts timings. `--quick` for fewer runs (still ≥ 7 each).
// Usage: npm run bench:connect [-- --quick] [--runs R]     (or: npm run build && node bench/connect.js)

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  benchRun,
  eachLine,
  median,
  PROJECT,
  startServer as startTestServerProcess,
  WA,
  waEnv as waEnvFor,
} from './harness.js';

const { values: opts } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, runs: { type: 'string' } },
});
const QUICK = opts.quick;
const RUNS = Math.max(7, Number(opts.runs ?? (QUICK ? 7 : 11)));
const CONTEXT_RUNS = QUICK ? 10 : 20;

// ------------------------------------------------------------------------------- processes and cleanup
const RUN = benchRun('wa-bench-connect-');
const ROOT = RUN.root;
const BASE_ENV = RUN.baseEnv;
const now = () => performance.now();

const startServer = () => startTestServerProcess(RUN);

// ------------------------------------------------------------------------------------------- wa connect
const waEnv = (server, db) => waEnvFor(BASE_ENV, server, db);

/**
 * Spawns `wa connect <id> --json` and times it to exit; `onQr` is called with each QR payload. Returns the
 * total and the time of each event (ms since spawn).
 */
function timedConnect(server, db, id, onQr) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const events = {};
    let stderr = '';
    const child = RUN.track(
      spawn(process.execPath, [WA, 'connect', id, '--json'], {
        cwd: ROOT,
        env: waEnv(server, db),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    eachLine(child.stdout, (line) => {
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line);
      if (typeof event.event !== 'string') return;
      events[event.event] ??= now() - t0;
      if (event.event === 'qr' && onQr) onQr(event.qr).catch(reject);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => {
      const ms = now() - t0;
      if (code !== 0) reject(new Error(`wa connect ${id} exited ${code}: ${stderr}`));
      else resolve({ ms, events });
    });
  });
}

function waAdd(server, db, id) {
  const result = spawnSync(process.execPath, [WA, 'add', id], { cwd: ROOT, env: waEnv(server, db), encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`wa add ${id} exited ${result.status}: ${result.stderr}`);
}

let phoneSeq = 0;
/** One (a) + (b) pair on a fresh database. */
async function runOnce(server, label) {
  const dir = join(ROOT, label);
  mkdirSync(dir);
  const db = join(dir, 'wa.db');
  const id = 'bench';
  waAdd(server, db, id);
  const phone = `1555${String(3000000 + ++phoneSeq)}`;
  let scans = 0;
  const pairing = await timedConnect(server, db, id, async (qr) => {
    if (scans++ > 0) return; // the first QR is the one on screen
    await server.post('/scan-qr', { qr, phone: { number: phone, name: label } });
  });
  const check = await timedConnect(server, db, id);
  return { pairing, check };
}

// --------------------------------------------------------------------------------------------- context
function timeProcess(args, cwd = ROOT) {
  const t0 = now();
  const result = spawnSync(process.execPath, args, { cwd, env: BASE_ENV, encoding: 'utf8' });
  const ms = now() - t0;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return { ms, stdout: result.stdout };
}

const IMPORT_BAILEYS = `const t0 = performance.now(); await import('@whiskeysockets/baileys'); console.log(performance.now() - t0);`;

// ------------------------------------------------------------------------------------------------ stats
const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const pad = (s, n) => String(s).padStart(n);
function line(label, values, base) {
  const rel = base === undefined ? '' : `   ${(median(values) / base).toFixed(1)}x node -e 0`;
  console.log(
    `  ${label.padEnd(48)}${pad(fmt(median(values)), 8)} ms   (min ${fmt(Math.min(...values))}, max ${fmt(Math.max(...values))})${rel}`,
  );
}

const LOAD_AT_START = loadavg()
  .map((l) => l.toFixed(2))
  .join(' ');

async function main() {
  const t0 = now();
  const require = createRequire(join(PROJECT, 'package.json'));
  const version = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), ${cpus().length}× ${cpus()[0]?.model ?? '?'}`,
  );
  console.log(`baileys ${version('@whiskeysockets/baileys')}, temp dir ${ROOT}`);
  console.log(`mode: ${QUICK ? 'quick' : 'full'}: ${RUNS} runs of (a) and (b), ${CONTEXT_RUNS} of the context figures`);

  const server = await startServer();
  console.log(`test server: pid ${server.child.pid}, ${server.url} (separate process)`);
  console.log('');

  // Context: a bare node process, and Baileys' import cost (whole process; in-process import only).
  timeProcess(['-e', '0']);
  const nodeMs = [];
  const baileysProcMs = [];
  const baileysImportMs = [];
  for (let i = 0; i < CONTEXT_RUNS; i++) {
    nodeMs.push(timeProcess(['-e', '0']).ms);
    const r = timeProcess(['--input-type=module', '-e', IMPORT_BAILEYS], PROJECT);
    baileysProcMs.push(r.ms);
    baileysImportMs.push(Number(r.stdout.trim()));
  }

  // Warm-up (untimed): file cache, the server's first pairing.
  await runOnce(server, 'warmup');
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await runOnce(server, `run${i}`));

  const nodeMedian = median(nodeMs);
  console.log(`context, median of ${CONTEXT_RUNS}:`);
  line('node -e 0', nodeMs);
  line('node: import Baileys, whole process', baileysProcMs, nodeMedian);
  line('      import Baileys alone (in-process)', baileysImportMs);
  console.log('');
  const pick = (key, event) => runs.map((r) => r[key].events[event]).filter((v) => v !== undefined);
  const diff = (key, from, to) =>
    runs.map((r) => r[key].events[to] - r[key].events[from]).filter((v) => Number.isFinite(v));
  console.log(`(a) wa connect <id> --json, full QR pairing (fresh database each run), median of ${RUNS}:`);
  line(
    'spawn → exit 0',
    runs.map((r) => r.pairing.ms),
    nodeMedian,
  );
  line('  spawn → qr event', pick('pairing', 'qr'));
  line('  qr → paired (phone scans, pair-success, 515)', diff('pairing', 'qr', 'paired'));
  line('  paired → open (first login, 812 pre-keys)', diff('pairing', 'paired', 'open'));
  line(
    '  open → exit (settle writes, close)',
    runs.map((r) => r.pairing.ms - r.pairing.events.open),
  );
  console.log('');
  console.log(`(b) wa connect <id> --json on the paired session (connectivity check), median of ${RUNS}:`);
  line(
    'spawn → exit 0',
    runs.map((r) => r.check.ms),
    nodeMedian,
  );
  line('  spawn → open event', pick('check', 'open'));
  line(
    '  open → exit (settle writes, close)',
    runs.map((r) => r.check.ms - r.check.events.open),
  );
  console.log('');
  console.log(
    'notes: the `wa` processes run with the test-trust preload (NODE_OPTIONS=--import …/trust-test-root.js), which\n' +
      '  imports Baileys before wa does (wa needs it anyway; the import is shared). After `open`, wa connect waits until\n' +
      '  no key write has started for 500 ms (at most 5 s), so the writes that follow a login land, then closes.',
  );
  console.log(
    `\nload average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (at the start: ${LOAD_AT_START})`,
  );
  console.log(`total ${((now() - t0) / 1000).toFixed(1)} s`);
}

try {
  await main();
} catch (error) {
  console.error(`\nbench:connect failed: ${error instanceof Error ? error.stack : error}`);
  process.exitCode = 1;
} finally {
  RUN.cleanup();
  process.exit(process.exitCode ?? 0);
}
