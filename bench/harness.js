// What the process-level benchmarks (bench:connect, bench:serve) share: a temp folder and every child
// process cleaned up on exit, failure or Ctrl-C; the loopback test server in a process of its own, driven
// through its admin API; the environment that points a spawned `wa` at that server.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT = fileURLToPath(new URL('..', import.meta.url));
export const WA = join(PROJECT, 'bin', 'wa.js');
const SERVER_CLI = join(PROJECT, 'test', 'wa-server', 'cli.js');
const TRUST_PRELOAD = join(PROJECT, 'test', 'wa-server', 'trust-test-root.js');

/**
 * A temp folder for this run, and `track(child)` for every process it starts; both are removed or killed
 * when the benchmark exits for any reason (`keep` leaves the folder for inspection).
 */
export function benchRun(prefix, { keep = false } = {}) {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const children = new Set();
  const track = (child) => {
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    for (const child of children) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    if (keep) console.error(`(kept ${root})`);
    else rmSync(root, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  /** Only what the children need: a parent's NODE_OPTIONS (npm's, a debugger's) would distort them. */
  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? root, NO_COLOR: '1' };
  return { root, track, baseEnv, cleanup };
}

/** Calls onLine for each complete line of a readable stream. */
export function eachLine(stream, onLine) {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    partial += chunk;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      onLine(line);
    }
  });
}

/**
 * Starts test/wa-server/cli.js in its own process (so its CPU is not counted against what is measured).
 * `known`: numbers that are accounts with a simulated phone and no linked device (`--known`), the contact
 * the messaging benchmarks send to and from; `quiet` drops the server's stderr (libsignal's "Closing
 * session" lines under message load).
 */
export async function startServer({ track, baseEnv }, { known = [], quiet = false } = {}) {
  const args = [SERVER_CLI, '--port', '0', '--admin-port', '0', ...known.flatMap((n) => ['--known', n])];
  const child = track(
    spawn(process.execPath, [...args, '--exit-on-stdin-close'], {
      cwd: PROJECT,
      env: baseEnv,
      stdio: ['pipe', 'pipe', quiet ? 'ignore' : 'inherit'],
    }),
  );
  const info = await new Promise((resolve, reject) => {
    eachLine(child.stdout, (line) => resolve(JSON.parse(line)));
    child.on('exit', (code) => reject(new Error(`test server exited with ${code}`)));
  });
  const call = async (method, route, body) => {
    const response = await fetch(`${info.adminUrl}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin ${method} ${route}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  return {
    child,
    pid: child.pid,
    url: info.url,
    rootPublicKey: info.rootPublicKey,
    get: (route) => call('GET', route),
    post: (route, body = {}) => call('POST', route, body),
  };
}

/** The environment of a `wa` process that talks to the test server (its root trusted) and keeps data in `db`. */
export const waEnv = (baseEnv, server, db) => ({
  ...baseEnv,
  WA_DB: db,
  WA_WS_URL: server.url,
  NODE_OPTIONS: `--import ${TRUST_PRELOAD}`,
  WA_TEST_ROOT_PUBLIC_KEY: server.rootPublicKey,
});

export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** VmRSS of a process, in kB (Linux /proc). */
export function rssKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
}

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime+stime of the process, in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 (utime) and 15 (stime)
}

/**
 * Spawns node with `args` in `run`'s folder (tracked, so it dies with the benchmark) and resolves when it
 * exits: its code, output, and wall-clock start and exit (ms). `onLine` sees each stdout line as it comes.
 */
export function runProcess(run, args, env, onLine) {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const startedAt = Date.now();
    // stdin a pipe left open: the plain script exits when it closes (it dies with the benchmark).
    const child = run.track(spawn(process.execPath, args, { cwd: run.root, env, stdio: ['pipe', 'pipe', 'pipe'] }));
    eachLine(child.stdout, (line) => {
      stdout += line + '\n';
      onLine?.(line, Date.now());
    });
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, startedAt, exitedAt: Date.now() }));
  });
}
