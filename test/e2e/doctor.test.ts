import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  message: string;
  hint: string | null;
}

describe('wa doctor', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
    await dir.remove();
  });

  const doctor = async (env: Record<string, string>) => {
    const res = await runWa(['doctor', '--json'], { env });
    const { checks } = JSON.parse(res.stdout) as { checks: Check[] };
    const check = (name: string): Check | undefined => checks.find((c) => c.name === name);
    return { code: res.code, checks, check, stderr: res.stderr };
  };

  it('a sound setup: every check ok or warn (unset WA_SECRET is a warning), a verified handshake, exit 0', async () => {
    const env = waEnv(server, join(dir.path, 'sound.db'));
    expect((await runWa(['add', 'bot'], { env })).code).toBe(0);
    const before = server.connections();
    const { code, checks, check } = await doctor(env);
    expect(code).toBe(0);
    expect(checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'node',
        'sqlite-driver',
        'database',
        'file-modes',
        'filesystem',
        'secret',
        'sessions',
        'leases',
        'http',
        'whatsapp',
      ]),
    );
    expect(checks.every((c) => c.status !== 'fail')).toBe(true);
    expect(check('secret')).toMatchObject({ status: 'warn' });
    expect(check('whatsapp')).toMatchObject({
      status: 'ok',
      message: expect.stringContaining('verified identity') as unknown,
    });
    expect(check('sessions')?.message).toMatch(/1 session\(s\): 0 paired, 1 unpaired/);
    expect(server.connections()).toBe(before + 1); // one handshake
    expect(server.devices()).toEqual([]); // and nothing paired or logged in
  });

  it('warns about a database on tmpfs and a public PORT without a token; human output has Try: lines', async () => {
    const shm = await mkdtemp('/dev/shm/wa-doctor-');
    try {
      const env = waEnv(server, join(shm, 'wa.db'), { PORT: '8080' });
      expect((await runWa(['add', 'bot'], { env })).code).toBe(0);
      const { code, check } = await doctor(env);
      expect(code).toBe(0);
      expect(check('filesystem')).toMatchObject({
        status: 'warn',
        message: expect.stringMatching(/tmpfs.*does not survive a redeploy/) as unknown,
      });
      expect(check('http')).toMatchObject({ status: 'warn', hint: expect.stringContaining('WA_API_TOKEN') as unknown });
      const human = await runWa(['doctor'], { env });
      expect(human.stdout).toMatch(/^warn {2}filesystem +the database .*tmpfs/m);
      expect(human.stdout).toMatch(/^ +Try: mount a persistent volume/m);

      // wa serve says the same at warn level within seconds of start, with no session to serve and no HTTP.
      const serve = new WaProcess(['serve'], { ...env, PORT: '' });
      const line = await serve.waitForLine(
        (l) => l.level === 40 && /does not survive a redeploy/.test(String(l.msg)),
        15_000,
      );
      expect(line).toMatchObject({ filesystem: 'tmpfs' });
      serve.kill('SIGTERM');
      expect((await serve.exited).code).toBe(0);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });

  it('fails with exit 5 on a wrong WA_SECRET, naming the fix', async () => {
    const db = join(dir.path, 'sealed.db');
    expect(
      (await runWa(['import', 'bot', join(dir.path, 'none')], { env: waEnv(server, db, { WA_SECRET: 'one' }) })).code,
    ).not.toBe(0);
    const sealedEnv = waEnv(server, db, { WA_SECRET: 'right secret' });
    expect((await runWa(['add', 'bot'], { env: sealedEnv })).code).toBe(0);
    // seal the database: a first creds-touching command with a secret sets it up
    expect((await runWa(['connect', 'bot', '--timeout', '1'], { env: sealedEnv })).code).toBe(4);
    const { code, check } = await doctor({ ...sealedEnv, WA_SECRET: 'wrong secret' });
    expect(check('secret')).toMatchObject({ status: 'fail' });
    expect(code).toBe(5);
    expect((await doctor(sealedEnv)).check('secret')).toMatchObject({ status: 'ok' });
  });

  it('fails with exit 4 on a server that is not WhatsApp (forged identity) or not there', async () => {
    const env = waEnv(server, join(dir.path, 'forged.db'));
    server.certMode = 'leaf-not-static';
    try {
      const forged = await doctor(env);
      expect(forged.code).toBe(4);
      expect(forged.check('whatsapp')).toMatchObject({
        status: 'fail',
        message: expect.stringContaining('Noise static key') as unknown,
        hint: expect.stringContaining('not a genuine WhatsApp server') as unknown,
      });
    } finally {
      server.certMode = 'valid';
    }
    const gone = await doctor({ ...env, WA_WS_URL: 'ws://127.0.0.1:9/ws/chat' });
    expect(gone.code).toBe(4);
    expect(gone.check('whatsapp')?.status).toBe('fail');
  });
});
