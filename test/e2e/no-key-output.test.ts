import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { pairSession } from '../helpers/pair.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const PHONE = '15550004444'; // a contact's simulated phone
const BOT = '15550003333';
// What libsignal's console dumps look like: SessionEntry fields and Buffers (node_modules/libsignal/src).
const KEY_MATERIAL = /rootKey|privKey|<Buffer|ephemeralKeyPair|baseKey/;

// libsignal prints whole session records ("Opening session:", "Closing session:", with private keys) with
// console.info whenever a session is opened or replaced. In a real wa process none of it reaches stdout,
// and no stream carries key material, even at debug level.
describe('dependencies never print to stdout, and no key material reaches any stream', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  beforeEach(() => {
    // The simulated phone's libsignal (in this test process) narrates its sessions on the console too.
    vi.spyOn(console, 'info').mockImplementation(() => undefined);
    vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  });
  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer({ knownNumbers: [PHONE] });
    const db = join(dir.path, 'wa.db');
    await pairSession(server, db, 'bot', BOT);
    env = waEnv(server, db, {
      WA_TIMING: 'keepAliveMs=2000,livenessGraceMs=2000,leaseTtlMs=3000,leaseRenewMs=1000,discoveryMs=1000',
    });
  });
  afterAll(async () => {
    await server.close();
    await dir.remove();
  });

  const receiptsFor = (id: string): number => server.phoneReceipts(PHONE).filter((r) => r.ids.includes(id)).length;

  const expectClean = (proc: WaProcess, jsonStdout: boolean): void => {
    for (const line of proc.stdout.split('\n').filter(Boolean)) {
      if (jsonStdout) expect(() => JSON.parse(line) as unknown, line).not.toThrow();
    }
    expect(proc.stdout).not.toMatch(KEY_MATERIAL);
    expect(proc.stderr).not.toMatch(KEY_MATERIAL);
  };

  it('wa serve at debug level: libsignal opens and closes sessions, the log stays JSON and keyless', async () => {
    const serve = new WaProcess(['serve', '--log-level', 'debug'], env);
    await serve.waitForLine((l) => l.msg === 'connection open');
    const first = await server.sendFromPhone(PHONE, BOT, 'hello');
    await server.waitFor(() => receiptsFor(first.id) > 0, 15_000);
    // As after a reinstall: a new session from the phone, so the bot's libsignal closes its open one.
    const second = await server.sendFromPhone(PHONE, BOT, 'hello again', { fresh: true });
    await server.waitFor(() => receiptsFor(second.id) > 0, 15_000);
    await serve.waitForLine(
      (l) => l.msg === 'dependency output: Closing open session in favor of incoming prekey bundle',
    );
    serve.kill('SIGTERM');
    expect((await serve.exited).code).toBe(0);
    expectClean(serve, true);
    // The dump was there to leak, and only its words were logged.
    expect(serve.lines.some((l) => l.msg === 'dependency output: Closing session: [object]')).toBe(true);
  });

  it('wa connect --json replaying an offline message on a new session: stdout carries only JSON events', async () => {
    const queued = await server.sendFromPhone(PHONE, BOT, 'while you were away', { fresh: true });
    const connect = new WaProcess(['connect', 'bot', '--json', '--log-level', 'debug'], env);
    expect((await connect.exited).code).toBe(0);
    await server.waitFor(() => receiptsFor(queued.id) > 0, 15_000);
    expectClean(connect, true);
    expect(connect.events.map((e) => e.event)).toEqual(['open']);
    expect(connect.stderr).toMatch(/dependency output: Closing session/);
  });
});
