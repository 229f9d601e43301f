import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { expectNoOverlappingLogins } from '../helpers/logins.js';
import { pairSessions } from '../helpers/pair.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

// Shrunk timing (as test/e2e/serve.test.ts): 3 s leases renewed every second. Discovery stays at its
// default 5 s, so a take within about a second proves the 1 s poll for waited-for sessions, not a round.
const TIMING =
  'keepAliveMs=2000,livenessGraceMs=2000,connectTimeoutMs=3000,leaseTtlMs=3000,leaseRenewMs=1000,backoffBaseMs=200,backoffCapMs=2000';
const SESSIONS = 3;

/**
 * An overlapping deploy (README "Deploying"): the platform starts the new daemon before it stops the old
 * one (a Kubernetes rolling update, a Railway deploy with draining seconds), both on one database. The new
 * one must wait, stay ready (so the platform goes on with the deploy), and take each session as soon as
 * the old one lets go of it; WhatsApp must never see two logins of one device at once.
 */
describe('overlapping deploys: a second wa serve on the same database', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let db: string;
  const procs: WaProcess[] = [];
  const serve = (args: string[] = []): WaProcess => {
    const proc = new WaProcess(['serve', ...args], waEnv(server, db, { WA_TIMING: TIMING }));
    procs.push(proc);
    return proc;
  };
  const openIn = (daemon: WaProcess, id: string): boolean =>
    daemon.lines.some((l) => l.session === id && l.msg === 'connection open');
  const until = async (what: string, done: () => boolean, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}: ${procs.map((p) => p.stdout).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /**
   * Per device, the time between the close of the old daemon's login and the new daemon's login, from
   * the server's own connection log: the outage a redeploy costs each session.
   */
  const gaps = (): number[] => {
    const byJid = new Map<string, Array<{ at: number; closedAt: number }>>();
    for (const e of server.connectionLog()) {
      if (e.outcome !== 'login' || !e.jid) continue;
      byJid.set(e.jid, [...(byJid.get(e.jid) ?? []), { at: e.at, closedAt: e.closedAt ?? Infinity }]);
    }
    return [...byJid.values()].map((logins) => {
      logins.sort((a, b) => a.at - b.at);
      const [before, after] = logins.slice(-2);
      return after!.at - before!.closedAt;
    });
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

  /** Starts the old daemon with every session open, then the new one, waiting for all of them and ready. */
  const overlap = async (): Promise<{ ids: string[]; old: WaProcess; next: WaProcess; base: string }> => {
    const ids = await pairSessions(server, db, SESSIONS);
    const old = serve();
    await until('the old daemon to open every session', () => ids.every((id) => openIn(old, id)), 30_000);
    const next = serve(['--http', '127.0.0.1:0']);
    const base = (await next.waitForLine((l) => l.msg === 'wa serve started')).http as string;
    for (const id of ids)
      await next.waitForLine((l) => l.session === id && String(l.msg).startsWith('waiting for '), 15_000);
    const sessions = (await (await fetch(`${base}/sessions`)).json()) as {
      waiting: Array<{ id: string; owner: { pid: number } }>;
    };
    expect(sessions.waiting.map((w) => w.id).sort()).toEqual(ids);
    for (const w of sessions.waiting) expect(w.owner.pid).toBe(old.child.pid);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200); // knowingly waiting: the platform may go on and stop the old one
    expect(await ready.json()).toMatchObject({ ready: true, owned: 0, waiting: ids });
    // Several polls later: still waiting, logged once per session, nothing opened twice.
    await new Promise((r) => setTimeout(r, 2500));
    for (const id of ids) {
      expect(next.lines.filter((l) => l.session === id && String(l.msg).startsWith('waiting for '))).toHaveLength(1);
      expect(openIn(next, id)).toBe(false);
    }
    return { ids, old, next, base };
  };

  it(
    'SIGTERM of the old one: each session is taken within about a second of its release, never open twice',
    { timeout: 90_000 },
    async () => {
      const { ids, old, next, base } = await overlap();
      old.kill('SIGTERM');
      expect(await old.exited).toEqual({ code: 0, signal: null });
      await until('the new daemon to open every session', () => ids.every((id) => openIn(next, id)), 15_000);
      const measured = gaps();
      console.log(`overlap gap per session after SIGTERM of the old daemon (ms): ${measured.join(', ')}`);
      // Released as each closes, polled every second, then one connect: well under a lease TTL (3 s).
      for (const gap of measured) expect(gap).toBeLessThan(2500);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expectNoOverlappingLogins(server, [old, next]);
    },
  );

  it(
    'SIGKILL of the old one: each session is taken once its lease expires (within the TTL), never open twice',
    { timeout: 90_000 },
    async () => {
      const { ids, old, next } = await overlap();
      old.kill('SIGKILL');
      await old.exited;
      const killedAt = Date.now();
      await until('the new daemon to open every session', () => ids.every((id) => openIn(next, id)), 20_000);
      const tookMs = Date.now() - killedAt;
      const measured = gaps();
      console.log(
        `overlap gap per session after SIGKILL of the old daemon (ms): ${measured.join(', ')}; all open ${tookMs} ms after the kill`,
      );
      // The lease runs out within its TTL (3 s) of the last renewal; then the 1 s poll and one connect.
      expect(tookMs).toBeLessThan(3000 + 1000 + 2500);
      expectNoOverlappingLogins(server, [old, next]);
    },
  );
});
