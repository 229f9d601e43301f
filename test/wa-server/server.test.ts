/**
 * Drives the REAL Baileys rc14 client (in-process) against the loopback test server.
 *
 * A correct XEdDSA verifier (plus the leaf-key == Noise-static binding) replaces Baileys'
 * always-true `Curve.verify` for the duration of this file, so these tests also prove that the
 * server signs its certificate chain and the ADV account signature correctly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import makeWASocket, { Curve, WA_CERT_DETAILS, proto, useMultiFileAuthState } from '@whiskeysockets/baileys';
import type { ConnectionState } from '@whiskeysockets/baileys';
import pino from 'pino';
import { startTestServer, type TestServer } from './server.js';
import { xeddsaVerify } from './crypto.js';

type Sock = ReturnType<typeof makeWASocket>;
type Update = Partial<ConnectionState>;
type SocketOpts = Partial<Parameters<typeof makeWASocket>[0]>;
interface LogLine {
  level: number;
  msg?: string;
}

/** the Boom status code of a disconnect error */
function statusOf(err: unknown): number | undefined {
  return (err as { output?: { statusCode?: number } } | undefined)?.output?.statusCode;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');

let server: TestServer;
const tempDirs: string[] = [];
const liveSocks = new Set<Sock>();
const originalRoot = WA_CERT_DETAILS.PUBLIC_KEY;
const originalVerify = Curve.verify;
const originalSharedKey = Curve.sharedKey;

async function tempDir() {
  const dir = await mkdtemp(path.join(tmpdir(), 'wa-server-test-'));
  tempDirs.push(dir);
  return dir;
}

interface Client {
  sock: Sock;
  updates: Update[];
  errors: LogLine[];
  /** resolves with the first update (already seen or future) matching pred */
  until(pred: (u: Update) => boolean, timeoutMs?: number): Promise<Update>;
  closed(timeoutMs?: number): Promise<number | undefined>;
  end(): Promise<void>;
}

async function connect(authDir: string, opts: SocketOpts = {}): Promise<Client> {
  const { state, saveCreds } = await useMultiFileAuthState(authDir);
  const errors: LogLine[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        errors.push(JSON.parse(line) as LogLine);
      },
    },
  );
  const sock = makeWASocket({
    auth: state,
    logger,
    waWebSocketUrl: server.url,
    syncFullHistory: false,
    markOnlineOnConnect: false,
    keepAliveIntervalMs: 1000,
    connectTimeoutMs: 5000,
    ...opts,
  });
  liveSocks.add(sock);
  const updates: Update[] = [];
  const waiters = new Set<() => void>();
  sock.ev.on('creds.update', saveCreds);
  sock.ev.on('connection.update', (u) => {
    updates.push(u as Update);
    for (const w of [...waiters]) w();
  });
  const until = (pred: (u: Update) => boolean, timeoutMs = 5000) =>
    new Promise<Update>((resolve, reject) => {
      const check = () => {
        const hit = updates.find(pred);
        if (hit) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out; updates: ${JSON.stringify(updates.map(summary))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const closed = async (timeoutMs = 5000) => {
    const u = await until((x) => x.connection === 'close', timeoutMs);
    return statusOf(u.lastDisconnect?.error);
  };
  const end = async () => {
    liveSocks.delete(sock);
    await Promise.race([sock.end(undefined), new Promise((r) => setTimeout(r, 2000))]);
  };
  return { sock, updates, errors, until, closed, end };
}

function summary(u: Update) {
  return {
    ...u,
    qr: u.qr ? 'QR' : undefined,
    lastDisconnect: u.lastDisconnect && statusOf(u.lastDisconnect.error),
  };
}

/** errors Baileys logged other than the expected "stream errored out" */
function unexpectedErrors(c: Client) {
  return c.errors.filter((e) => e.level >= 50 && e.msg !== 'stream errored out');
}

async function openSession(dir: string, opts: SocketOpts = {}) {
  const c = await connect(dir, opts);
  await c.until((u) => u.connection === 'open', 5000);
  return c;
}

beforeAll(async () => {
  server = await startTestServer({ knownNumbers: ['15550009999'] });
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(server.rootPublicKey);
  // correct verifier + leaf/static binding (what `wa` installs), instead of rc14's always-true one
  let lastPeerKey: Buffer | undefined;
  Curve.sharedKey = (priv: Uint8Array, pub: Uint8Array) => {
    lastPeerKey = Buffer.from(pub);
    return originalSharedKey(priv, pub);
  };
  Curve.verify = (pub: Uint8Array, msg: Uint8Array, sig: Uint8Array) => {
    if (!xeddsaVerify(pub, msg, sig)) return false;
    if (!Buffer.from(pub).equals(Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY))) {
      let key: Uint8Array | null | undefined;
      try {
        key = proto.CertChain.NoiseCertificate.Details.decode(msg).key;
      } catch {
        key = undefined;
      }
      if (key?.length === 32 && lastPeerKey && !Buffer.from(key).equals(lastPeerKey)) return false;
    }
    return true;
  };
});

afterEach(async () => {
  for (const s of [...liveSocks]) {
    liveSocks.delete(s);
    await Promise.race([s.end(undefined), new Promise((r) => setTimeout(r, 2000))]);
  }
  server.certMode = 'valid';
  server.rejectVersion(false);
  server.httpErrorOnUpgrade(null);
  server.forgeAccountSignature = false;
});

afterAll(async () => {
  await server?.close();
  WA_CERT_DETAILS.PUBLIC_KEY = originalRoot;
  Curve.verify = originalVerify;
  Curve.sharedKey = originalSharedKey;
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('trust preload', () => {
  it('puts WA_TEST_ROOT_PUBLIC_KEY into the WA_CERT_DETAILS the app resolves', async () => {
    const script =
      "const m = await import('@whiskeysockets/baileys');" +
      'const k = m.WA_CERT_DETAILS.PUBLIC_KEY;' +
      "console.log(JSON.stringify({ isBuffer: Buffer.isBuffer(k), b64: Buffer.from(k).toString('base64') }))";
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        cwd: projectRoot,
        env: {
          ...process.env,
          NODE_OPTIONS: `--import ${path.join(here, 'trust-test-root.js')}`,
          WA_TEST_ROOT_PUBLIC_KEY: server.rootPublicKeyBase64,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`exit ${code}: ${stderr}`))));
    });
    expect(JSON.parse(out.trim())).toEqual({ isBuffer: true, b64: server.rootPublicKeyBase64 });
    expect(server.rootPublicKey).toHaveLength(32);
  }, 15000);
});

describe('standalone cli', () => {
  it('prints url/rootPublicKey/adminUrl, serves admin requests, exits on SIGTERM', async () => {
    const child = spawn(process.execPath, [path.join(here, 'cli.js'), '--port', '0', '--seed', 'cli-test'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d) => {
          buf += d;
          if (buf.includes('\n')) resolve(buf.split('\n')[0] ?? '');
        });
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`cli exited early (${code})`)));
      });
      const info = JSON.parse(line);
      expect(info.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws\/chat$/);
      expect(Buffer.from(info.rootPublicKey, 'base64')).toHaveLength(32);
      expect(info.rootPublicKey).not.toBe(server.rootPublicKeyBase64); // other seed
      const post = (p: string, body: unknown) =>
        fetch(info.adminUrl + p, { method: 'POST', body: JSON.stringify(body) }).then(async (r) => ({
          status: r.status,
          body: (await r.json()) as { error?: string },
        }));
      expect((await post('/cert-mode', { mode: 'wrong-serial' })).status).toBe(200);
      expect((await post('/cert-mode', { mode: 'nope' })).status).toBe(400);
      expect((await post('/scan-qr', { qr: 'https://wa.me/settings/linked_devices#x,y,z,w,1' })).body.error).toMatch(
        /unknown or expired/,
      );
      const state = await fetch(info.adminUrl + '/state').then((r) => r.json());
      expect(state).toMatchObject({ certMode: 'wrong-serial', connections: 0, devices: [] });
    } finally {
      const exited = new Promise((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  }, 15000);
});

describe('pairing and login', () => {
  let paired: { dir: string; jid: string; lid: string };

  it('QR pairing → 515 → login → open, fast and without query timeouts', async () => {
    const dir = await tempDir();
    const t0 = Date.now();
    const c = await connect(dir);
    const { qr } = await c.until((u) => !!u.qr);
    expect(qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#2@/);
    const { jid, lid } = await server.scanQr(qr!, { number: '15551230001', name: 'Alice' });
    expect(jid).toBe('15551230001:1@s.whatsapp.net');
    expect(lid).toMatch(/^\d+:1@lid$/);
    expect(await c.closed()).toBe(515);
    expect(c.updates.some((u) => u.isNewLogin)).toBe(true);
    expect(c.sock.authState.creds.account).toBeTruthy();
    await c.end();
    const t1 = Date.now();
    const c2 = await connect(dir);
    await c2.until((u) => u.connection === 'open', 4000);
    const t2 = Date.now();
    console.log(`QR→515: ${t1 - t0} ms, login→open: ${t2 - t1} ms`);
    expect(c2.sock.authState.creds.me?.lid).toBe(lid);
    await c2.until((u) => u.receivedPendingNotifications === true);
    expect(unexpectedErrors(c).concat(unexpectedErrors(c2))).toEqual([]);
    expect(c2.errors.filter((e) => /timed out/i.test(e.msg ?? ''))).toEqual([]);
    paired = { dir, jid, lid };
    const dev = server.devices().find((d) => d.jid === jid)!;
    expect(dev).toMatchObject({ phone: '15551230001', name: 'Alice', removed: false, online: true, logins: 1 });
    expect(dev.preKeyCount).toBe(812);
    const log = server.connectionLog();
    expect(log.at(-2)?.outcome).toBe('registration');
    expect(log.at(-1)).toMatchObject({ outcome: 'login', jid, routed: false });
    // iqs after open: usync for a known and an unknown number
    const res = await c2.sock.onWhatsApp('15550009999', '15550000000');
    expect(res).toEqual([{ jid: '15550009999@s.whatsapp.net', exists: true }]);
    await expect(c2.sock.profilePictureUrl(jid)).rejects.toMatchObject({ data: 404 });
    await c2.end();
  }, 15000);

  it('re-login with saved creds uses the ED routing prefix; no new pre-key upload', async () => {
    const c = await openSession(paired.dir);
    expect(server.connectionLog().at(-1)).toMatchObject({ outcome: 'login', routed: true, routingInfoMatches: true });
    const dev = server.devices().find((d) => d.jid === paired.jid)!;
    expect(dev.logins).toBe(2);
    expect(dev.preKeyCount).toBe(812);
    expect(unexpectedErrors(c)).toEqual([]);
    await c.end();
    await server.waitFor(() => !server.devices().find((d) => d.jid === paired.jid)!.online);
  });

  it('drop → 428', async () => {
    const c = await openSession(paired.dir);
    expect(server.drop(paired.jid)).toBe(1);
    expect(await c.closed()).toBe(428);
  });

  it('conflict → 440', async () => {
    const c = await openSession(paired.dir);
    expect(server.conflict(paired.jid)).toBe(1);
    expect(await c.closed()).toBe(440);
  });

  it('a second live login of the same device replaces the first → 440', async () => {
    const a = await openSession(paired.dir);
    const b = await openSession(paired.dir);
    expect(await a.closed()).toBe(440);
    expect(b.updates.some((u) => u.connection === 'close')).toBe(false);
    expect(server.devices().find((d) => d.jid === paired.jid)!.online).toBe(true);
  });

  it('silence → keep-alive 408 after keepAliveIntervalMs + 5 s', async () => {
    const c = await openSession(paired.dir);
    const t0 = Date.now();
    expect(server.silence(paired.jid)).toBe(1);
    expect(await c.closed(10000)).toBe(408);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThan(5000);
    expect(took).toBeLessThan(9000);
  }, 15000);

  it('rejectVersion → 405', async () => {
    server.rejectVersion(true);
    const c = await connect(paired.dir);
    expect(await c.closed()).toBe(405);
    expect(server.connectionLog().at(-1)?.outcome).toBe('rejected-405');
  });

  it('certificate faults are rejected by a correct verifier (400); valid chain accepted', async () => {
    for (const mode of ['bad-signature', 'bad-intermediate-signature', 'wrong-serial', 'leaf-not-static'] as const) {
      server.certMode = mode;
      const c = await connect(paired.dir);
      expect(await c.closed(), mode).toBe(400);
      await c.end();
    }
    server.certMode = 'valid';
    const ok = await openSession(paired.dir);
    await ok.end();
  });

  it('refuseConnections (reset and close modes) → 408 per attempt, counted in reset mode', async () => {
    const before = server.connections();
    await server.refuseConnections(300);
    const c = await connect(paired.dir);
    expect(await c.closed()).toBe(408);
    expect(server.connections()).toBe(before + 1);
    expect(server.connectionLog().at(-1)?.outcome).toBe('refused');
    await c.end();
    await server.refuseConnections(300, { mode: 'close' });
    const c2 = await connect(paired.dir);
    expect(await c2.closed()).toBe(408);
    await c2.end();
    await new Promise((r) => setTimeout(r, 350));
    const ok = await openSession(paired.dir);
    await ok.end();
  });

  it('HTTP 503 on upgrade leaves the client stuck in connecting', async () => {
    server.httpErrorOnUpgrade(503);
    const c = await connect(paired.dir);
    await server.waitFor(() => server.connectionLog().at(-1)?.outcome === 'http-error');
    await new Promise((r) => setTimeout(r, 1000));
    expect(c.updates.map((u) => u.connection).filter(Boolean)).toEqual(['connecting']);
  });

  it('restart → 428 for the live session, then reconnects on the same port', async () => {
    const c = await openSession(paired.dir);
    const port = server.port;
    await server.restart(200);
    expect(await c.closed()).toBe(428);
    expect(server.port).toBe(port);
    const again = await openSession(paired.dir);
    await server.restart(); // no down time
    expect(await again.closed()).toBe(428);
    const third = await openSession(paired.dir);
    await third.end();
  });

  it('removeDevice → 401 stream error, later logins → 401 failure', async () => {
    const c = await openSession(paired.dir);
    expect(server.removeDevice(paired.jid)).toBe(1);
    expect(await c.closed()).toBe(401);
    expect(server.devices().find((d) => d.jid === paired.jid)).toMatchObject({ removed: true, online: false });
    const c2 = await connect(paired.dir);
    expect(await c2.closed()).toBe(401);
    expect(server.connectionLog().at(-1)?.outcome).toBe('rejected-401');
  });
});

describe('other registration paths', () => {
  it('pairing code: wrong code is only detected by the phone; right code pairs; logout forgets the device', async () => {
    const dir = await tempDir();
    const c = await connect(dir);
    await c.until((u) => !!u.qr);
    const code = await c.sock.requestPairingCode('15557654321');
    await server.waitFor(() => server.pendingPairingCodes().includes('15557654321'), 3000);
    await expect(server.enterPairingCode('ZZZZZZZZ' === code ? 'YYYYYYYY' : 'ZZZZ-ZZZZ')).rejects.toThrow(
      /wrong pairing code/,
    );
    expect(c.updates.some((u) => u.connection === 'close')).toBe(false);
    const { jid } = await server.enterPairingCode(`${code.slice(0, 4)}-${code.slice(4)}`, '15557654321');
    expect(jid).toBe('15557654321:1@s.whatsapp.net');
    expect(await c.closed()).toBe(515);
    await c.end();
    const c2 = await openSession(dir);
    expect(unexpectedErrors(c2)).toEqual([]);
    await c2.sock.logout();
    expect(await c2.closed()).toBe(401);
    await server.waitFor(() => !!server.devices().find((d) => d.jid === jid)?.removed, 3000);
  }, 15000);

  it('forged ADV account signature is rejected by the client; scanQr fails', async () => {
    server.forgeAccountSignature = true;
    const dir = await tempDir();
    const c = await connect(dir);
    const { qr } = await c.until((u) => !!u.qr);
    await expect(server.scanQr(qr!)).rejects.toThrow();
    expect(await c.closed()).toBe(500);
    expect(server.forgeAccountSignature).toBe(false);
  });

  it('QR refs run out → 408', async () => {
    const dir = await tempDir();
    const c = await connect(dir, { qrTimeout: 100 });
    expect(await c.closed(3000)).toBe(408);
    expect(c.updates.filter((u) => u.qr)).toHaveLength(6);
  });

  it('handles many concurrent sessions', async () => {
    // the in-process client (812 pre-keys written as files per login) is the bottleneck, not the server
    const n = 10;
    const opts = { connectTimeoutMs: 20000, keepAliveIntervalMs: 30000 };
    const dirs = await Promise.all(Array.from({ length: n }, () => tempDir()));
    const clients = await Promise.all(dirs.map((d) => connect(d, opts)));
    await Promise.all(
      clients.map(async (c, i) => {
        const { qr } = await c.until((u) => !!u.qr, 10000);
        await server.scanQr(qr!, { number: `1555800${String(i).padStart(4, '0')}` });
        expect(await c.closed(10000)).toBe(515);
        await c.end();
      }),
    );
    const open = await Promise.all(dirs.map((d) => connect(d, opts)));
    await Promise.all(open.map((c) => c.until((u) => u.connection === 'open', 45000)));
    expect(server.devices().filter((d) => d.online && d.phone.startsWith('1555800'))).toHaveLength(n);
  }, 90_000);
});
