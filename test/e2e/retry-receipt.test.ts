/**
 * A recipient that cannot decrypt a message asks for it again, and the sender answers from the outbox
 * (README "Sending messages": "Retries answered"), even when the daemon that sent it is gone: the retry
 * receipt reaches a `wa serve` started afterwards, which has nothing of the message in memory. Baileys'
 * own copy lives in memory only (the recent-message cache, lib/Utils/message-retry-manager.js, consulted
 * first by sendMessagesAgain in lib/Socket/messages-recv.js), so after a restart only getMessage — the
 * outbox, src/session/outbox.ts outboxMessageSource — can answer; without an answer b never gets the text.
 *
 * The order is forced by keeping b offline: its corrupted copy waits in the test server's queue while a
 * sends, gets its server ack and is restarted; only then does b connect, fail to decrypt ("Bad MAC",
 * test/wa-server/README.md corruptNext) and send the retry receipt to a's device.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, pairSession } from '../helpers/pair.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const BOT_A = '15550009661';
const BOT_B = '15550009662';
const TEXT = 'decrypt me after the restart';

type Event = { type: string; id?: string; text?: string | null };

describe('a retry receipt after the sending daemon restarted', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  let db: string;
  let jidA: string;
  let jidB: string;
  const daemons: WaProcess[] = [];

  const serve = async (id: string): Promise<WaProcess> => {
    const daemon = new WaProcess(['serve', id], env);
    daemons.push(daemon);
    await daemon.waitForLine((l) => l.msg === 'connection open' && l.session === id);
    return daemon;
  };
  const stop = async (daemon: WaProcess): Promise<void> => {
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  };
  const eventsOf = async (session: string, id: string): Promise<Event[]> => {
    const res = await runWa(['listen', session, '--json'], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event)
      .filter((e) => e.id === id);
  };
  const statusOf = async (id: string): Promise<string | undefined> => {
    const store = await openTestStore(db);
    try {
      return (await store.getOutgoing('a', id))?.status;
    } finally {
      await store.close();
    }
  };
  /** Message stanzas a's device wrote with this id (the first send, then the resend). */
  const writesOfA = (id: string) => server.messageLog({ device: jidA, tag: 'message', dir: 'in', id });
  const retryReceipts = (id: string) =>
    server.messageLog({ device: jidB, tag: 'receipt', dir: 'in', id }).filter((e) => e.type === 'retry');

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer();
    db = join(dir.path, 'wa.db');
    jidA = await pairSession(server, db, 'a', BOT_A);
    jidB = await pairSession(server, db, 'b', BOT_B);
    env = waEnv(server, db, {
      WA_TIMING: 'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000',
    });
  }, 60_000);
  afterAll(async () => {
    for (const d of daemons) d.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.exited));
    await server.close();
    await dir.remove();
  });

  it('a corrupted ciphertext forces a retry receipt after a restart: answered from the outbox, b decrypts it once', async () => {
    const first = await serve('a');
    // Only b's companion gets the corrupted copy; b's phone (device 0) decrypts its own copy as usual.
    server.corruptNext(jidB);
    const res = await runWa(['send', '--json', 'a', BOT_B, TEXT, '--wait', 'sent'], { env, timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const { id } = JSON.parse(res.stdout) as { id: string };
    // b is offline: its copy waits in the server's queue, and nobody has asked for it again yet.
    expect(server.queued(jidB).some((q) => q.kind === 'message' && q.id === id)).toBe(true);
    expect(retryReceipts(id)).toEqual([]);
    expect(writesOfA(id)).toHaveLength(1);

    await stop(first);
    const restarted = await serve('a');
    const restartedAt = Date.now();
    const b = await serve('b');

    // b fails to decrypt ("Bad MAC"), keeps that as an undecryptable event and asks a's device again.
    await until(async () => retryReceipts(id).length > 0 || undefined, "b's retry receipt");
    await until(
      async () => (await eventsOf('b', id)).some((e) => e.type === 'message') || undefined,
      'b to store the decrypted message',
      20_000,
    ).catch(async (error: unknown) => {
      console.error(JSON.stringify(restarted.lines.slice(-20)), JSON.stringify(b.lines.slice(-20)));
      throw error;
    });
    // The answer came from the restarted daemon: a's device wrote the id a second time, after the restart.
    const writes = writesOfA(id);
    expect(writes).toHaveLength(2);
    expect(writes[1]!.at).toBeGreaterThanOrEqual(restartedAt);
    // Give a duplicate the time to show up, then: the stub, and the text exactly once.
    await new Promise((r) => setTimeout(r, 1000));
    const events = await eventsOf('b', id);
    expect(events.filter((e) => e.type === 'undecryptable')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'message').map((e) => e.text)).toEqual([TEXT]);
    // The resend changes nothing of a's row: it stays where the receipts took it.
    expect(['sent', 'delivered', 'read']).toContain(await statusOf(id));

    await stop(b);
    await stop(restarted);
  }, 90_000);
});
