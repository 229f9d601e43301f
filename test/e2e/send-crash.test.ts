/**
 * A message, once accepted, is never lost and never doubled by a crash of the sending daemon: `kill -9`
 * of the owner right after `wa send` returned (the message queued or being sent) and after it was sent;
 * after a restart the recipient holds exactly one copy and the sender's row is final.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, pairSession } from '../helpers/pair.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const BOT_A = '15550008661';
const BOT_B = '15550008662';
const FINAL = ['sent', 'delivered', 'read'];

describe('kill -9 of the sending daemon', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  let db: string;
  const daemons: WaProcess[] = [];

  const start = (): WaProcess => {
    const daemon = new WaProcess(['serve'], env);
    daemons.push(daemon);
    return daemon;
  };
  const bothOpen = (daemon: WaProcess) =>
    daemon.waitForLine(() => daemon.lines.filter((l) => l.msg === 'connection open').length >= 2, 30_000);
  const copiesAtB = async (id: string): Promise<number> => {
    const res = await runWa(['listen', 'b', '--json'], { env: { WA_DB: db } });
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; id?: string })
      .filter((e) => e.type === 'message' && e.id === id).length;
  };
  const statusOf = async (id: string): Promise<string | undefined> => {
    const store = await openTestStore(db);
    try {
      return (await store.getOutgoing('a', id))?.status;
    } finally {
      await store.close();
    }
  };

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer();
    db = join(dir.path, 'wa.db');
    await pairSession(server, db, 'a', BOT_A);
    await pairSession(server, db, 'b', BOT_B);
    env = waEnv(server, db, {
      WA_TIMING: 'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000',
    });
  }, 60_000);
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await server.close();
    await dir.remove();
  });

  it.each([
    ['as soon as it was accepted (queued, or being sent)', 'queued'],
    ['after WhatsApp acknowledged it (sent)', 'sent'],
  ])(
    'killed %s: after a restart b has exactly one copy and the row is final',
    async (_when, wait) => {
      const first = start();
      await bothOpen(first);
      const res = await runWa(['send', '--json', 'a', BOT_B, `crash test (${wait})`, '--wait', wait], { env });
      expect(res.code, res.stderr).toBe(0);
      const { id } = JSON.parse(res.stdout) as { id: string };
      first.kill('SIGKILL');
      await first.exited;

      const second = start();
      await until(
        async () => FINAL.includes((await statusOf(id)) ?? ''),
        `a's row to be final after the restart`,
        30_000,
      );
      await until(async () => (await copiesAtB(id)) > 0, 'b to store the message', 30_000);
      // Give a duplicate the time to show up, had the restart sent it twice.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await copiesAtB(id)).toBe(1);
      second.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    },
    120_000,
  );
});
