import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

// Baileys 7.0.0-rc14 alone accepts every one of these forgeries (its Curve.verify passes any 64-byte
// signature and the leaf is never bound to the Noise static key); wa must refuse each, and never loop.
describe('wa verifies whom it talks to', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
    await dir.remove();
  });

  const fresh = async (name: string): Promise<void> => {
    env = waEnv(server, join(dir.path, `${name}.db`));
    expect((await runWa(['add', 'bot'], { env })).code).toBe(0);
  };

  it.each([
    ['bad-signature', 'leaf certificate signed with the wrong key'],
    ['bad-intermediate-signature', 'intermediate not signed by the root'],
    ['wrong-serial', 'intermediate issued under another serial'],
    ['leaf-not-static', "validly signed chain whose leaf is not the server's static key"],
  ] as const)('refuses a server whose chain has a %s (%s): exit 4, one attempt', async (mode, _what) => {
    await fresh(mode);
    server.certMode = mode;
    const attemptsBefore = server.connections();
    const res = await runWa(['connect', 'bot', '--json', '--timeout', '20'], { env });
    server.certMode = 'valid';
    expect(res.code).toBe(4);
    expect(res.stderr).toMatch(/Error: server identity not verified/);
    expect(JSON.parse(res.stdout.trim().split('\n').pop()!)).toMatchObject({ event: 'error', code: 'E_STOPPED' });
    expect(server.connections() - attemptsBefore).toBe(1);
    const status = JSON.parse((await runWa(['status', 'bot', '--json'], { env })).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ state: 'unpaired', lastDisconnect: { code: 400 } });
  });

  it('refuses a phone whose account signature is forged at pairing, storing nothing', async () => {
    await fresh('forged-account');
    server.forgeAccountSignature = true;
    const proc = new WaProcess(['connect', 'bot', '--json', '--timeout', '20'], env);
    const qr = await proc.waitForEvent('qr');
    await server.scanQr(qr.qr as string, { number: '15551234567', name: 'Mallory' }).catch(() => undefined);
    const { code } = await proc.exited;
    expect(code).toBe(4);
    expect(proc.stderr).toContain('phone identity not verified');
    const status = JSON.parse((await runWa(['status', 'bot', '--json'], { env })).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ state: 'unpaired', jid: null });
    expect(server.devices().filter((d) => d.name === 'Mallory' && !d.removed)).toEqual([]);
  });

  it('accepts a genuine chain under the test root', async () => {
    await fresh('genuine');
    const proc = new WaProcess(['connect', 'bot', '--json'], env);
    const qr = await proc.waitForEvent('qr');
    await server.scanQr(qr.qr as string, { number: '15557654321', name: 'Ada' });
    expect((await proc.exited).code).toBe(0);
  });
});
