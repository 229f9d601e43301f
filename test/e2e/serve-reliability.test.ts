import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { pairSessions } from '../helpers/pair.js';
import { runWa } from '../helpers/run-wa.js';
import { holdWriteLock } from '../helpers/sqlite-lock.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

// Shrunk timing, as in serve.test.ts: keep-alive 2 s + 2 s grace, 3 s leases renewed every second.
const FAST =
  'keepAliveMs=2000,livenessGraceMs=2000,connectTimeoutMs=3000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000,backoffBaseMs=200,backoffCapMs=2000';

describe('wa serve: takeovers, storage stalls and lag', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let db: string;
  const procs: WaProcess[] = [];
  const serve = (args: string[] = [], timing = FAST): WaProcess => {
    const proc = new WaProcess(['serve', ...args], waEnv(server, db, { WA_TIMING: timing }));
    procs.push(proc);
    return proc;
  };
  const status = async (id: string) =>
    JSON.parse((await runWa(['status', id, '--json'], { env: waEnv(server, db) })).stdout) as Record<string, unknown>;
  const opens = (daemon: WaProcess, id: string): number =>
    daemon.lines.filter((l) => l.session === id && l.msg === 'connection open').length;
  let ready = 0;
  const until = async (
    what: string,
    done: () => boolean,
    timeoutMs = 20_000,
    poll: () => Promise<void> = () => Promise.resolve(),
  ): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (await poll(); !done(); await poll()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeEach(async () => {
    dir = await tempDir();
    server = await startTestServer();
    db = join(dir.path, 'wa.db');
  });
  afterEach(async () => {
    for (const proc of procs.splice(0)) {
      proc.kill('SIGKILL');
      await proc.exited;
    }
    await server.close();
    await dir.remove();
  });

  it(
    'a `wa connect --takeover` of a session serve holds leaves it paired, and serve takes it back, 20 times',
    { timeout: 240_000 },
    async () => {
      const [id] = (await pairSessions(server, db, 1)) as [string];
      // Discovery every 200 ms: serve takes the session back as soon as connect releases it.
      const timing = FAST.replace('discoveryMs=1000', 'discoveryMs=200');
      const daemon = serve([], timing);
      await until('the first open', () => opens(daemon, id) === 1);
      for (let round = 1; round <= 20; round++) {
        const before = opens(daemon, id);
        const result = await runWa(['connect', id, '--takeover', '--json'], {
          env: waEnv(server, db, { WA_TIMING: timing }),
        });
        expect(result.code, `round ${round}: ${result.stderr}`).toBe(0);
        const after = await status(id);
        expect(after, `round ${round}`).toMatchObject({ state: 'paired' });
        expect((after.lastDisconnect as { code?: number } | null)?.code, `round ${round}`).not.toBe(440);
        await until(`serve to take '${id}' back in round ${round}`, () => opens(daemon, id) > before);
      }
      expect(daemon.lines.filter((l) => l.msg === 'replaced by another client; session stopped')).toEqual([]);
    },
  );

  it(
    "opens the sessions after another process held the SQLite write lock past the store's patience; /readyz 503 meanwhile",
    { timeout: 90_000 },
    async () => {
      const ids = await pairSessions(server, db, 2);
      const lock = await holdWriteLock(db, 12_000); // longer than the store's 10 s lock patience
      let released = false;
      void lock.released.then(() => (released = true));
      const daemon = serve(['--http', '127.0.0.1:0']);
      const base = (await daemon.waitForLine((l) => l.msg === 'wa serve started', 20_000)).http as string;
      const whileLocked: number[] = [];
      while (!released) {
        const status = (await fetch(`${base}/readyz`)).status;
        if (!released) whileLocked.push(status);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(whileLocked.length).toBeGreaterThan(10);
      expect(new Set(whileLocked)).toEqual(new Set([503]));
      for (const id of ids) await until(`'${id}' to open`, () => opens(daemon, id) > 0, 30_000);
      await until(
        '/readyz 200',
        () => ready === 200,
        10_000,
        async () => {
          ready = (await fetch(`${base}/readyz`)).status;
        },
      );
      expect(daemon.lines.filter((l) => l.msg === 'session stopped')).toEqual([]);
      for (const id of ids) expect(await status(id)).toMatchObject({ state: 'paired', connection: 'open' });
    },
  );

  it(
    'keeps its sessions open while another process holds the write lock for 6 s, with the event-loop lag bounded',
    { timeout: 90_000 },
    async () => {
      const ids = await pairSessions(server, db, 2);
      // Renewals every second keep hitting the lock (a 30 s TTL, so no fencing): they wait on a timer.
      const daemon = serve(
        ['--http', '127.0.0.1:0'],
        'keepAliveMs=2000,livenessGraceMs=2000,connectTimeoutMs=3000,leaseTtlMs=30000,leaseRenewMs=1000,discoveryMs=1000',
      );
      const base = (await daemon.waitForLine((l) => l.msg === 'wa serve started', 20_000)).http as string;
      for (const id of ids) await until(`'${id}' to open`, () => opens(daemon, id) > 0, 30_000);
      const lines = daemon.lines.length;
      const lock = await holdWriteLock(db, 6_000);
      await lock.released;
      await new Promise((r) => setTimeout(r, 2_000)); // the renewals catch up
      const after = daemon.lines.slice(lines);
      expect(after.filter((l) => l.msg === 'connection open' || typeof l.action === 'string')).toEqual([]);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const max = Number(/^wa_event_loop_lag_max_seconds (\S+)$/m.exec(metrics)?.[1]);
      const p99 = Number(/^wa_event_loop_lag_seconds\{quantile="0.99"\} (\S+)$/m.exec(metrics)?.[1]);
      console.log(`event-loop lag during a 6 s lock: max ${max} s, p99 ${p99} s`);
      expect(max).toBeGreaterThan(0);
      expect(max).toBeLessThan(1); // the hold was 6 s: nothing waited for it synchronously
      for (const id of ids) expect(await status(id)).toMatchObject({ state: 'paired', connection: 'open' });
    },
  );
});
