// bench:cli — how long `wa status` (and friends) take as a process, against a bare `node -e 0`, on a
// database holding 1000 sessions that wa itself created; and whether the read-only commands stay clear of
// Baileys, protobufjs and pino (read-only commands must never load them: README "How the code is laid out").
//
// Prints figures and ratios; never asserts timings. `--quick` for a smaller run (still ≥ 20 runs each).
// Usage: npm run bench:cli [-- --quick]     (or: npm run build && node bench/cli.js --quick)

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const QUICK = process.argv.includes('--quick');
const RUNS = QUICK ? 20 : 30;
const SESSIONS = 1000;
const PROJECT = fileURLToPath(new URL('..', import.meta.url));
const WA = join(PROJECT, 'bin', 'wa.js');

const ROOT = mkdtempSync(join(tmpdir(), 'wa-bench-cli-'));
const cleanup = () => rmSync(ROOT, { recursive: true, force: true });
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}
const DB = join(ROOT, 'data', 'wa.db');

// ---------------------------------------------------------------------------------------------- setup
/**
 * 1000 sessions through wa's own store API (dist/store/sqlite.js), exactly as `wa add` + a creds write
 * would leave them: half paired (creds.account present, me.id/name set), half unpaired. Much faster
 * than 1000 `wa add` processes, and the same code writes the same rows and schema.
 */
async function setup() {
  const t0 = performance.now();
  const { SqliteStore } = await import('../dist/store/sqlite.js');
  const { encodeValue } = await import('../dist/store/codec.js');
  const { summaryOf } = await import('../dist/store/creds-summary.js');
  const { initAuthCreds } = await import('@whiskeysockets/baileys');
  const store = new SqliteStore(DB);
  const ids = [];
  const pending = [];
  const template = initAuthCreds();
  // One enclosing transaction (the store's own become savepoints): 2000 fsyncs would dominate the setup.
  // The store methods do their work synchronously and return settled promises, checked below.
  store.db.transaction(() => {
    for (let i = 0; i < SESSIONS; i++) {
      const id = `bot-${String(i).padStart(4, '0')}`;
      ids.push(id);
      pending.push(store.createSession(id, i % 3 === 0 ? `customer ${i}` : null));
      const creds = { ...template }; // initAuthCreds() costs ~20 ms (key generation); the keys' values do not matter here
      if (i % 2 === 0) {
        creds.me = { id: `5511${String(900000000 + i)}:${(i % 20) + 1}@s.whatsapp.net`, name: `Bot ${i}` };
        creds.account = {
          details: 'AAAA',
          accountSignatureKey: 'BBBB',
          accountSignature: 'CCCC',
          deviceSignature: 'DDDD',
        };
        creds.registered = true;
      }
      pending.push(store.writeCreds(id, encodeValue(creds), summaryOf(creds)));
    }
  })();
  await Promise.all(pending);
  const sqlite = store.db.prepare('SELECT sqlite_version()').pluck().get();
  const sync = ['OFF', 'NORMAL', 'FULL', 'EXTRA'][store.db.pragma('synchronous', { simple: true })];
  const journal = store.db.pragma('journal_mode', { simple: true });
  const counts = store.db.prepare('SELECT state, count(*) AS n FROM wa_sessions GROUP BY state ORDER BY state').all();
  await store.close();
  return { ids, sqlite, sync, journal, counts, ms: performance.now() - t0 };
}

// --------------------------------------------------------------------------------------------- timing
const ENV = { ...process.env, WA_DB: DB, NO_COLOR: '1' };
delete ENV.NODE_OPTIONS; // a parent's --require/--import would distort both sides
delete ENV.DATABASE_URL;

function spawnTimed(args) {
  const t0 = performance.now();
  const result = spawnSync(process.execPath, args, { cwd: ROOT, env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  if (result.error) throw result.error;
  return { ms, status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// ------------------------------------------------------------------------------------ module tracking
/*
 * Which modules does a command load? A preload given with `NODE_OPTIONS=--import <file>` records both
 * module systems, so nothing slips through whichever way a package is reached:
 *  - ESM: module.register() installs a `resolve` hook. Hooks run on Node's loader thread, so the hook
 *    appends every resolved URL to a log file synchronously (appendFileSync) — no message passing that
 *    could be lost when the process exits. Baileys 7 is ESM and is seen here.
 *  - CommonJS (protobufjs, pino, and ESM-imported CJS, which Node 20 loads through the CJS loader):
 *    on 'exit' the preload writes every filename in require.cache to the same log.
 * A package counts as loaded when any recorded path contains node_modules/<name>/. The check runs a
 * positive control first (a process that imports Baileys) to show the detector does see all three.
 * No timing is taken from these instrumented runs.
 */
const HOOKS = join(ROOT, 'track-hooks.mjs');
const PRELOAD = join(ROOT, 'track-preload.mjs');
writeFileSync(
  HOOKS,
  `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (process.env.WA_BENCH_TRACK) appendFileSync(process.env.WA_BENCH_TRACK, 'esm ' + result.url + '\\n');
  return result;
}
`,
);
writeFileSync(
  PRELOAD,
  `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
register(${JSON.stringify(pathToFileURL(HOOKS).href)});
const require = createRequire(import.meta.url);
process.on('exit', () => {
  const lines = Object.keys(require.cache).map((file) => 'cjs ' + file);
  if (process.env.WA_BENCH_TRACK) appendFileSync(process.env.WA_BENCH_TRACK, lines.join('\\n') + '\\n');
});
`,
);
const FORBIDDEN = ['@whiskeysockets/baileys', 'protobufjs', 'pino'];

function loadedPackages(args, label, cwd = ROOT) {
  const log = join(ROOT, `track-${label.replace(/\W+/g, '_')}.log`);
  const result = spawnSync(process.execPath, args, {
    cwd,
    env: { ...ENV, NODE_OPTIONS: `--import ${pathToFileURL(PRELOAD).href}`, WA_BENCH_TRACK: log },
    encoding: 'utf8',
  });
  const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  const found = {};
  for (const name of FORBIDDEN) {
    const needle = `node_modules/${name}/`;
    const via = new Set(lines.filter((l) => l.includes(needle)).map((l) => l.slice(0, 3)));
    found[name] = [...via];
  }
  const modules = new Set(lines.map((l) => l.slice(4)));
  return { status: result.status, found, count: modules.size, lines: lines.length };
}

// ----------------------------------------------------------------------------------------------- main
const fmt = (ms) => ms.toFixed(1).padStart(7);

async function main() {
  const env = await setup();
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), ${cpus().length}× ${cpus()[0]?.model ?? '?'}`,
  );
  console.log(`sqlite ${env.sqlite}, journal_mode=${env.journal}, synchronous=${env.sync}`);
  console.log(
    `db: ${SESSIONS} sessions created through dist/store/sqlite.js in ${env.ms.toFixed(0)} ms ` +
      `(${env.counts.map((c) => `${c.n} ${c.state}`).join(', ')}); ${RUNS} runs per command, interleaved, mode ${QUICK ? 'quick' : 'full'}`,
  );
  const pairedId = env.ids[0];

  const commands = [
    { name: 'node -e 0', args: ['-e', '0'] },
    { name: 'wa status', args: [WA, 'status'] },
    { name: 'wa status --json', args: [WA, 'status', '--json'] },
    { name: `wa status ${pairedId}`, args: [WA, 'status', pairedId] },
    { name: 'wa --version', args: [WA, '--version'] },
  ];

  // Sanity: each command works on this DB (and outputs what it should) before we time it.
  const checks = [];
  for (const c of commands.slice(1)) {
    const r = spawnTimed(c.args);
    let note = `exit ${r.status}`;
    if (c.name === 'wa status --json') {
      try {
        note += `, ${JSON.parse(r.stdout).sessions.length} sessions in JSON`;
      } catch {
        note += `, INVALID JSON on stdout (${r.stdout.length} bytes — truncated?)`;
      }
    }
    if (c.name === 'wa status') note += `, ${r.stdout.trim().split('\n').length} lines (${r.stdout.length} bytes)`;
    if (c.name === 'wa --version') note += `, "${r.stdout.trim()}"`;
    if (r.stderr.trim()) note += `, stderr: ${r.stderr.trim().split('\n')[0]}`;
    checks.push(`${c.name}: ${note}`);
  }
  console.log(`check:\n  ${checks.join('\n  ')}`);
  console.log('');

  // Warm the OS file cache, then interleave: every round runs every command once, rotating the order.
  for (const c of commands) spawnTimed(c.args);
  const times = Object.fromEntries(commands.map((c) => [c.name, []]));
  for (let r = 0; r < RUNS; r++) {
    for (let i = 0; i < commands.length; i++) {
      const c = commands[(i + r) % commands.length];
      times[c.name].push(spawnTimed(c.args).ms);
    }
  }
  const base = median(times['node -e 0']);
  console.log(
    `${'command'.padEnd(26)}${'median'.padStart(9)}${'p90'.padStart(9)}${'min'.padStart(9)}   vs node -e 0 (median)`,
  );
  for (const c of commands) {
    const t = times[c.name];
    const m = median(t);
    const vs =
      c.name === 'node -e 0' ? '1.00x (baseline)' : `${(m / base).toFixed(2)}x  (+${(m - base).toFixed(1)} ms)`;
    console.log(`${c.name.padEnd(26)}${fmt(m)} ms${fmt(percentile(t, 90))} ms${fmt(Math.min(...t))} ms   ${vs}`);
  }
  const ratio = median(times['wa status']) / base;
  console.log(`\nwa status / node -e 0 = ${ratio.toFixed(2)}x (target ≤ 1.60x: ${ratio <= 1.6 ? 'met' : 'NOT met'})`);

  // Module loading: positive control first, then the read-only commands.
  console.log('\nmodules loaded (tracked with an --import preload: ESM resolve hook + require.cache at exit)');
  const control = loadedPackages(
    ['--input-type=module', '-e', "await import('@whiskeysockets/baileys')"],
    'control',
    PROJECT,
  );
  const describe = (found) =>
    FORBIDDEN.map(
      (n) => `${n.replace('@whiskeysockets/', '')}: ${found[n].length ? `LOADED (${found[n].join('+')})` : 'no'}`,
    ).join(', ');
  console.log(`  ${'control: import baileys'.padEnd(26)} ${describe(control.found)}  [${control.count} modules]`);
  const controlOk = FORBIDDEN.every((n) => control.found[n].length > 0);
  if (!controlOk) console.log('  (the control did not see every package: the detector is not trustworthy here)');
  let clean = true;
  for (const c of [
    ...commands.slice(1),
    { name: 'wa --help', args: [WA, '--help'] },
    { name: 'wa listen --json', args: [WA, 'listen', '--json'] },
  ]) {
    const r = loadedPackages(c.args, c.name);
    clean &&= FORBIDDEN.every((n) => r.found[n].length === 0);
    console.log(`  ${c.name.padEnd(26)} ${describe(r.found)}  [${r.count} modules, exit ${r.status}]`);
  }
  console.log(
    `  → read-only commands ${clean ? 'load none of Baileys, protobufjs, pino' : 'LOAD a forbidden package'}` +
      (controlOk ? ' (detector verified by the control)' : ''),
  );
}

try {
  await main();
} finally {
  cleanup();
}
