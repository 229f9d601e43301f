import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { expectNoOverlappingLogins } from '../helpers/logins.js';
import { pairSession, pairSessions } from '../helpers/pair.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

// Shrunk timing so fault tests take seconds: keep-alive 2 s + 2 s grace, 3 s leases renewed every second.
const FAST =
  'keepAliveMs=2000,livenessGraceMs=2000,connectTimeoutMs=3000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000,backoffBaseMs=200,backoffCapMs=2000';

describe('wa serve against the loopback WhatsApp server', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let db: string;
  const procs: WaProcess[] = [];
  const serve = (args: string[] = [], timing = FAST, extra: Record<string, string> = {}): WaProcess => {
    const proc = new WaProcess(['serve', ...args], waEnv(server, db, { WA_TIMING: timing, ...extra }));
    procs.push(proc);
    return proc;
  };
  const status = async (id: string) =>
    JSON.parse((await runWa(['status', id, '--json'], { env: waEnv(server, db) })).stdout) as Record<string, unknown>;
  const onlineCount = (): number => server.devices().filter((d) => d.online).length;
  /** Waits until the daemons' own logs say each of `ids` is open (the server may still see the pairing sockets). */
  const allOpen = async (daemons: WaProcess[], ids: string[], timeoutMs = 20_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const openNow = () =>
      ids.every((id) => daemons.some((d) => d.lines.some((l) => l.session === id && l.msg === 'connection open')));
    while (!openNow()) {
      if (Date.now() > deadline) throw new Error(`not all open: ${daemons.map((d) => d.stdout).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const logins = (jid: string): number =>
    server.connectionLog().filter((e) => e.jid === jid && e.outcome === 'login').length;

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

  it('opens every paired session, reconnects after a drop, and stops on SIGTERM with exit 0, leases released', async () => {
    const ids = await pairSessions(server, db, 3);
    const daemon = serve();
    await allOpen([daemon], ids);
    expect(await status('bot0')).toMatchObject({ connection: 'open', owner: { pid: daemon.child.pid } });

    server.drop();
    await daemon.waitForLine((l) => l.code === 428 && l.action === 'retry');
    await server.waitFor(
      () => onlineCount() === 3 && server.connectionLog().filter((e) => e.outcome === 'login').length >= 6,
      15_000,
    );

    daemon.kill('SIGTERM');
    const started = Date.now();
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(10_000);
    for (const id of ids)
      expect(await status(id)).toMatchObject({ state: 'paired', connection: 'closed', owner: null });
    expect(server.devices().every((d) => !d.removed)).toBe(true); // closed, never logged out
  });

  it('detects a silent server (no frames) and reopens within keep-alive plus grace', async () => {
    const ids = await pairSessions(server, db, 1);
    const daemon = serve();
    await allOpen([daemon], ids);
    const silencedAt = Date.now();
    server.silence(undefined, { stopReading: true });
    const line = await daemon.waitForLine(
      (l) => typeof l.reason === 'string' && l.reason.startsWith('no data from the server'),
      15_000,
    );
    expect(line).toMatchObject({ code: 408, action: 'retry' });
    expect(Date.now() - silencedAt).toBeLessThan(2000 + 2000 + 3000); // keep-alive + grace + watchdog tick and slack
    await daemon.waitForLine((l) => l.msg === 'connection open' && (l.time as number) > silencedAt, 15_000);
  });

  it('abandons a connect stuck after an HTTP 503 upgrade answer, retries, and opens once the server is healthy', async () => {
    await pairSessions(server, db, 1);
    server.httpErrorOnUpgrade(503);
    const daemon = serve();
    await daemon.waitForLine((l) => typeof l.reason === 'string' && l.reason.includes('stuck connecting'), 20_000);
    server.httpErrorOnUpgrade(null);
    await daemon.waitForLine((l) => l.msg === 'connection open', 20_000);
    expect(onlineCount()).toBe(1);
  });

  it(
    // The schedule itself (full jitter, doubling, cap, reset) is proven in-process on a manual clock
    // (test/unit/session-runner.test.ts); this proves the real process against a refusing server.
    'backs off while the server refuses connections for 8 s, with no hot loop, then reopens',
    { timeout: 90_000 },
    async () => {
      const ids = await pairSessions(server, db, 1);
      const daemon = serve(
        [],
        // A 4 s cap: the doubling is real (base 1 s), but the reopen after the outage comes within seconds.
        'keepAliveMs=2000,livenessGraceMs=2000,connectTimeoutMs=3000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000,backoffCapMs=4000',
      );
      await allOpen([daemon], ids);
      await server.refuseConnections(8_000); // resets every new connection for 8 s
      const refusedAt = Date.now();
      server.drop();
      await new Promise((r) => setTimeout(r, 8_000));
      const retriesWhileDown = daemon.lines.filter(
        (l) => typeof l.delayMs === 'number' && (l.time as number) >= refusedAt,
      ).length;
      await daemon.waitForLine((l) => l.msg === 'connection open' && (l.time as number) > refusedAt, 60_000);
      const delays = daemon.lines.filter((l) => typeof l.delayMs === 'number').map((l) => l.delayMs as number);
      // Full jitter, base 1 s, doubling: a handful of attempts in 8 s, nowhere near a hot loop.
      expect(retriesWhileDown).toBeGreaterThanOrEqual(2);
      expect(retriesWhileDown).toBeLessThanOrEqual(10);
      delays.forEach((d, i) => expect(d).toBeLessThan(Math.min(4000, 1000 * 2 ** (i + 1))));
    },
  );

  it('stops a replaced session (440) without retrying, and marks a removed one (401) logged_out', async () => {
    const [a, b] = await pairSessions(server, db, 2);
    const daemon = serve();
    await allOpen([daemon], [a!, b!]);
    const [jidA, jidB] = [(await status(a!)).jid as string, (await status(b!)).jid as string];
    server.conflict(jidA);
    server.removeDevice(jidB);
    await daemon.waitForLine((l) => l.session === a && l.msg === 'replaced by another client; session stopped');
    await daemon.waitForLine((l) => l.session === b && l.msg === 'logged out by WhatsApp; session stopped');
    const loginsA = logins(jidA);
    // Not retried (in-process: test/unit/session-runner.test.ts); here: discovery does not pick them up again.
    await new Promise((r) => setTimeout(r, 1500));
    expect(logins(jidA)).toBe(loginsA);
    expect(await status(a!)).toMatchObject({ state: 'replaced', lastDisconnect: { code: 440 }, owner: null });
    expect(await status(b!)).toMatchObject({ state: 'logged_out', lastDisconnect: { code: 401 }, owner: null });
    const db1 = new Database(db, { readonly: true });
    expect(
      db1.prepare("SELECT count(*) FROM whatsapp_auth WHERE session_id = ? AND data_key = 'creds'").pluck().get(b),
    ).toBe(1); // never deletes credentials
    db1.close();
  });

  it('picks up a session paired while it runs, within seconds', async () => {
    const daemon = serve();
    await daemon.waitForLine((l) => l.msg === 'wa serve started');
    await pairSession(server, db, 'late', '15559990000');
    await daemon.waitForLine((l) => l.session === 'late' && l.msg === 'connection open', 15_000);
  });

  it('finishes pending key writes on SIGTERM during first logins (812 pre-keys each), exit 0 under 10 s', async () => {
    const ids = await pairSessions(server, db, 4, 'fresh', { skipFirstLogin: true });
    const daemon = serve([], FAST.replace('discoveryMs=1000', 'discoveryMs=500'));
    await daemon.waitForLine((l) => l.msg === 'connection open', 20_000);
    daemon.kill('SIGTERM');
    const started = Date.now();
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(10_000);
    const check = new Database(db, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    for (const id of ids) {
      const creds = JSON.parse(
        check
          .prepare("SELECT data_value FROM whatsapp_auth WHERE session_id = ? AND data_key = 'creds'")
          .pluck()
          .get(id) as string,
      ) as { nextPreKeyId: number; firstUnuploadedPreKeyId: number };
      const preKeys = check
        .prepare("SELECT count(*) FROM whatsapp_auth WHERE session_id = ? AND data_key LIKE 'pre-key-%'")
        .pluck()
        .get(id) as number;
      // Every pre-key the creds count as generated is stored: no commit was cut off by the shutdown.
      expect(preKeys, id).toBe(creds.nextPreKeyId - 1);
    }
    check.close();
  });

  it(
    'two daemons on one database never open a session twice; kill -9 of one, and the other takes over within a lease TTL plus a renewal',
    { timeout: 90_000 },
    async () => {
      const ids = await pairSessions(server, db, 4);
      const one = serve();
      const two = serve();
      await allOpen([one, two], ids);
      const ownerPids = async () =>
        Promise.all(ids.map(async (id) => ((await status(id)).owner as { pid: number } | null)?.pid));
      const pids = await ownerPids();
      expect(new Set(pids).size).toBeLessThanOrEqual(2);
      for (const pid of pids) expect([one.child.pid, two.child.pid]).toContain(pid);

      const victim = pids.includes(one.child.pid) ? one : two;
      const survivor = victim === one ? two : one;
      const victimSessions = ids.filter((_, i) => pids[i] === victim.child.pid);
      victim.kill('SIGKILL');
      const killedAt = Date.now();
      const reopened = (id: string) =>
        survivor.lines.some((l) => l.session === id && l.msg === 'connection open' && (l.time as number) > killedAt);
      while (!victimSessions.every(reopened)) {
        expect(Date.now() - killedAt, survivor.stdout).toBeLessThan(20_000);
        await new Promise((r) => setTimeout(r, 100));
      }
      const tookOver = Date.now() - killedAt;
      expect(new Set(await ownerPids())).toEqual(new Set([survivor.child.pid]));
      // TTL 3 s + one renewal (1 s) + discovery (1 s), plus connect time and slack on a busy machine.
      expect(tookOver).toBeLessThan(3000 + 1000 + 1000 + 5000);

      expectNoOverlappingLogins(server, [one, two]);
    },
  );

  it(
    'releases the sockets, timers and listeners of each closed connection (no growth across reconnects)',
    { timeout: 120_000 },
    async () => {
      const ids = await pairSessions(server, db, 2);
      const daemon = serve(['--http', '127.0.0.1:0']);
      const base = (await daemon.waitForLine((l) => l.msg === 'wa serve started')).http as string;
      await allOpen([daemon], ids);
      const resources = async (): Promise<number> => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return Number(/^wa_process_active_resources (\d+)$/m.exec(text)?.[1]);
      };
      const opens = (): number => daemon.lines.filter((l) => l.msg === 'connection open').length;
      // Let the first logins' one-off work (initial sync timers, key uploads) finish before the baseline.
      await new Promise((r) => setTimeout(r, 3000));
      const before = await resources();
      for (let round = 1; round <= 15; round++) {
        const seen = opens();
        server.drop();
        const deadline = Date.now() + 15_000;
        while (opens() < seen + ids.length) {
          expect(Date.now(), `round ${round}: sessions did not reopen`).toBeLessThan(deadline);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await new Promise((r) => setTimeout(r, 3000));
      const after = await resources();
      // 30 connections closed and reopened; a leak of even one handle per connection would show as +30.
      expect(after - before, `active resources ${before} → ${after}`).toBeLessThan(6);
    },
  );

  it('serves /healthz, /readyz, /sessions and /metrics, with a bearer token when WA_API_TOKEN is set', async () => {
    const ids = await pairSessions(server, db, 1);
    const daemon = serve(['--http', '127.0.0.1:0'], FAST, { WA_API_TOKEN: 's3cret' });
    const started = await daemon.waitForLine((l) => l.msg === 'wa serve started');
    const base = started.http as string;
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await allOpen([daemon], ids);
    const auth = { headers: { authorization: 'Bearer s3cret' } };

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(401);
    expect((await fetch(`${base}/sessions`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const ready = await fetch(`${base}/readyz`, auth);
    expect(ready.status).toBe(200);
    const sessions = (await (await fetch(`${base}/sessions`, auth)).json()) as {
      sessions: Array<Record<string, unknown>>;
    };
    expect(sessions.sessions).toMatchObject([
      { id: 'bot0', state: 'paired', connection: 'open', owner: { pid: daemon.child.pid } },
    ]);
    const metrics = await (await fetch(`${base}/metrics`, auth)).text();
    expect(metrics).toContain('wa_sessions{state="paired"} 1');
    expect(metrics).toContain('wa_connections{connection="open"} 1');
    expect(metrics).toMatch(/wa_connects_total\{result="open"\} [1-9]/);
    expect(metrics).toMatch(/wa_keystore_write_seconds_count \d+/);

    server.silence(undefined, { stopReading: true });
    await daemon.waitForLine((l) => l.code === 408);
    server.httpErrorOnUpgrade(503);
    const notReady = await fetch(`${base}/readyz`, auth);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ ready: false, notOpen: ['bot0'] });
    // No secret in any log line.
    expect(daemon.stdout).not.toContain('s3cret');
    expect(daemon.stdout).not.toMatch(/"(private|privKey|noiseKey|advSecretKey)"/);
  });
});
