import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baileysSocketFactory, loadBaileys } from '../../src/session/baileys.js';
import { untilOpenOrClosed } from '../../src/session/connection.js';
import { SessionAuth } from '../../src/session/session-auth.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { pairSession } from '../helpers/pair.js';
import { tempDir } from '../helpers/temp.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const silent = pino({ level: 'silent' });

// Many sessions share one serve process. When one meets a forged server, the reason must stay with that
// connection: a healthy session that stops for a reason of its own (here a 405) is never told the other's
// identity failure. Both run in this one process, with real Baileys sockets, at the same time.
describe('identity failures travel with their own connection', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let forged: TestServer;
  let healthy: TestServer;
  let store: SqliteStore;
  beforeAll(async () => {
    dir = await tempDir();
    [forged, healthy] = await Promise.all([startTestServer(), startTestServer()]);
    const db = join(dir.path, 'wa.db');
    await pairSession(healthy, db, 'healthy', '15550009999');
    store = new SqliteStore(db);
    await store.createSession('victim', null);
    forged.certMode = 'leaf-not-static';
    healthy.rejectVersion(true);
  });
  afterAll(async () => {
    await store.close();
    await Promise.all([forged.close(), healthy.close()]);
    await dir.remove();
  });

  it('in one process, two sessions at once: only the forged one carries the identity detail', async () => {
    const baileys = await loadBaileys();
    const connectOnce = async (id: string, url: string) => {
      const auth = await SessionAuth.open(store, id, { deferCredsUntilPaired: true });
      const socket = baileysSocketFactory(baileys, {
        wsUrl: url,
        timing: { keepAliveMs: 30_000, connectTimeoutMs: 10_000 },
      })(auth, silent);
      const outcome = await untilOpenOrClosed(socket, { signal: AbortSignal.timeout(20_000) });
      await socket.end();
      await auth.close();
      return outcome;
    };
    for (let round = 0; round < 3; round++) {
      const [bad, good] = await Promise.all([connectOnce('victim', forged.url), connectOnce('healthy', healthy.url)]);
      expect(bad).toMatchObject({
        kind: 'closed',
        disconnect: { action: 'stop', detail: "the server's certificate does not match its Noise static key" },
      });
      expect(good).toMatchObject({ kind: 'closed', disconnect: { action: 'stop', code: 405 } });
      expect(good.kind === 'closed' && good.disconnect.detail).toBeFalsy();
    }
  });
});
