import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { expectNoOverlappingLogins } from '../helpers/logins.js';
import { openTestStore, pairSessions } from '../helpers/pair.js';
import { freshSchema, pgUrl, privateCluster } from '../helpers/postgres.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

// Leases of 3 s renewed every second, discovery every second: takeovers happen in seconds.
const FAST =
  'keepAliveMs=2000,livenessGraceMs=2000,connectTimeoutMs=3000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000,backoffBaseMs=200,backoffCapMs=2000';

describe.skipIf(!pgUrl)('several wa serve processes ("hosts") sharing one PostgreSQL database', () => {
  let server: TestServer;
  let schema: Awaited<ReturnType<typeof freshSchema>>;
  const daemons: WaProcess[] = [];
  const start = (db = schema.url): WaProcess => {
    const proc = new WaProcess(['serve'], waEnv(server, db, { WA_TIMING: FAST }));
    daemons.push(proc);
    return proc;
  };
  const owners = async (ids: string[], db = schema.url): Promise<Array<number | undefined>> => {
    const store = await openTestStore(db);
    try {
      return await Promise.all(ids.map(async (id) => (await store.getSession(id))?.lease?.pid));
    } finally {
      await store.close();
    }
  };
  const openIn = (d: WaProcess, id: string, after = 0): boolean =>
    d.lines.some((l) => l.session === id && l.msg === 'connection open' && (l.time as number) > after);
  const waitUntil = async (what: string, predicate: () => boolean, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}\n${daemons.map((d) => d.stdout.slice(-2000)).join('\n---\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeEach(async () => {
    server = await startTestServer();
    schema = await freshSchema();
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) {
      d.kill('SIGKILL');
      await d.exited;
    }
    await server.close();
    await schema.drop();
  });

  it(
    'three daemons share 6 sessions, none opened twice; kill -9 of one and the others take its sessions within a lease TTL plus a renewal',
    { timeout: 120_000 },
    async () => {
      const ids = await pairSessions(server, schema.url, 6);
      const all = [start(), start(), start()];
      await waitUntil('all sessions open', () => ids.every((id) => all.some((d) => openIn(d, id))), 30_000);
      const pids = await owners(ids);
      for (const pid of pids) expect(all.map((d) => d.child.pid)).toContain(pid);
      // Each round a daemon takes only what it can connect before the next (5 here), so the work spreads.
      expect(new Set(pids).size).toBeGreaterThanOrEqual(2);

      const victim = all.find((d) => pids.includes(d.child.pid))!;
      const orphaned = ids.filter((_, i) => pids[i] === victim.child.pid);
      victim.kill('SIGKILL');
      const killedAt = Date.now();
      const survivors = all.filter((d) => d !== victim);
      await waitUntil(
        'orphaned sessions reopened by a survivor',
        () => orphaned.every((id) => survivors.some((d) => openIn(d, id, killedAt))),
        30_000,
      );
      const tookOver = Date.now() - killedAt;
      console.log(
        `postgres takeover after kill -9: ${orphaned.length} sessions reopened in ${tookOver} ms (lease TTL 3000 ms, renewal 1000 ms)`,
      );
      expect(tookOver).toBeLessThan(3000 + 1000 + 1000 + 5000); // TTL + renewal + discovery, plus connect and slack
      const after = await owners(ids);
      for (const pid of after) expect(survivors.map((d) => d.child.pid)).toContain(pid);
      expectNoOverlappingLogins(server, daemons);
    },
  );

  // On a cluster of its own: stopping the shared one would break every other test running meanwhile.
  it('a database restart longer than a lease TTL does not make two owners', { timeout: 120_000 }, async () => {
    const cluster = await privateCluster();
    try {
      const ids = await pairSessions(server, cluster.url, 4);
      const all = [start(cluster.url), start(cluster.url)];
      await waitUntil('all sessions open', () => ids.every((id) => all.some((d) => openIn(d, id))), 30_000);
      const restartedAt = Date.now();
      await cluster.restart(4500); // longer than the 3 s TTL: every lease expires while the database is down
      await waitUntil(
        'all sessions open again',
        () => ids.every((id) => all.some((d) => openIn(d, id, restartedAt + 4500))),
        40_000,
      );
      for (const d of all) expect(d.child.exitCode, d.stderr).toBeNull(); // nobody crashed on the way
      // Each daemon holding sessions closed them itself before its leases could expire (self-fencing) ...
      const fenced = (d: WaProcess) =>
        d.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('could not renew the lease in time'));
      expect(all.some(fenced), all.map((d) => d.stdout).join('\n----\n')).toBe(true);
      // ... so at no moment were two of them connected with the same device.
      expectNoOverlappingLogins(server, daemons);
      const pids = await owners(ids, cluster.url);
      for (const pid of pids) expect(all.map((d) => d.child.pid)).toContain(pid);
    } finally {
      for (const d of daemons.splice(0)) {
        d.kill('SIGKILL');
        await d.exited;
      }
      cluster.stop();
    }
  });

  it('SIGTERM while the database hangs: exit 0 within 10 s all the same', { timeout: 120_000 }, async () => {
    const cluster = await privateCluster();
    try {
      const ids = await pairSessions(server, cluster.url, 2);
      const daemon = start(cluster.url);
      await waitUntil('sessions open', () => ids.every((id) => openIn(daemon, id)), 30_000);
      cluster.freeze(true); // every query now waits (the pool's own timeout is 30 s)
      const stoppedAt = Date.now();
      daemon.kill('SIGTERM');
      const { code } = await daemon.exited;
      const ms = Date.now() - stoppedAt;
      console.log(`SIGTERM with PostgreSQL frozen: exit ${code} after ${ms} ms`);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(10_000);
    } finally {
      cluster.freeze(false);
      for (const d of daemons.splice(0)) {
        d.kill('SIGKILL');
        await d.exited;
      }
      cluster.stop();
    }
  });
});
