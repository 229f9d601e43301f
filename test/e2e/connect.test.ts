import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

const PHONE = { number: '15551234567', name: 'Ada' };

describe('wa connect against the loopback WhatsApp server', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let env: Record<string, string>;
  let db: string;
  const procs: WaProcess[] = [];
  const wa = (...args: string[]): WaProcess => {
    const proc = new WaProcess(args, env);
    procs.push(proc);
    return proc;
  };
  const cli = (...args: string[]) => runWa(args, { env });
  const rows = (sql: string, ...params: unknown[]): unknown[] => {
    const handle = new Database(db, { readonly: true });
    try {
      return handle.prepare(sql).all(...params);
    } finally {
      handle.close();
    }
  };
  const authRowCount = (id = 'bot'): number =>
    (rows('SELECT count(*) AS n FROM whatsapp_auth WHERE session_id = ?', id)[0] as { n: number }).n;
  const status = async (id = 'bot') =>
    JSON.parse((await cli('status', id, '--json')).stdout) as Record<string, unknown>;

  /** Pairs session `bot` by QR and returns once `wa connect` has exited 0. */
  const pairByQr = async (): Promise<void> => {
    const proc = wa('connect', 'bot', '--json', '--timeout', '60');
    const qr = await proc.waitForEvent('qr');
    await server.scanQr(qr.qr as string, PHONE);
    expect(await proc.exited).toEqual({ code: 0, signal: null });
  };

  beforeEach(async () => {
    dir = await tempDir();
    server = await startTestServer();
    db = join(dir.path, 'wa.db');
    env = waEnv(server, db);
    expect((await cli('add', 'bot')).code).toBe(0);
  });
  afterEach(async () => {
    for (const proc of procs.splice(0)) {
      proc.kill();
      await proc.exited;
    }
    await server.close();
    await dir.remove();
  });

  it('pairs by QR: QR event, paired, open, exit 0; status shows the phone; first login stored 812 pre-keys', async () => {
    const proc = wa('connect', 'bot', '--json');
    const qr = await proc.waitForEvent('qr');
    expect(qr.qr).toMatch(/^https:\/\/wa\.me\/settings\/linked_devices#.+,.+,.+,.+/);
    expect(Date.parse(qr.expiresAt as string) - Date.now()).toBeGreaterThan(50_000);
    const device = await server.scanQr(qr.qr as string, PHONE);
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(proc.events.map((e) => e.event)).toEqual(['qr', 'paired', 'open']);
    expect(proc.events[2]).toEqual({ event: 'open', jid: device.jid });
    expect(proc.stderr).toContain('Paired with +15551234567 (Ada).');
    expect(proc.stderr).toContain('Connected as +15551234567 (Ada).');
    // stdout carries only JSON in --json mode
    for (const line of proc.stdout.trim().split('\n')) expect(() => JSON.parse(line) as unknown).not.toThrow();

    expect(await status()).toMatchObject({
      state: 'paired',
      jid: device.jid,
      phone: '15551234567',
      name: 'Ada',
      connection: 'closed',
      owner: null,
    });
    expect(
      rows("SELECT count(*) AS n FROM whatsapp_auth WHERE session_id = 'bot' AND data_key LIKE 'pre-key-%'"),
    ).toEqual([{ n: 812 }]);
    expect(server.devices()).toMatchObject([{ jid: device.jid, removed: false, preKeyCount: 812 }]);
    expect((await cli('status', 'bot')).code).toBe(0);
  });

  it('logs in without a QR on the next connect (a connectivity check)', async () => {
    await pairByQr();
    const proc = wa('connect', 'bot', '--json');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(proc.events.map((e) => e.event)).toEqual(['open']);
    expect(await status()).toMatchObject({ state: 'paired', lastConnectedAt: expect.any(String) as string });
    expect(server.devices()[0]?.logins).toBeGreaterThanOrEqual(2);
  });

  it('pairs with a pairing code shown as XXXX-XXXX', async () => {
    const proc = wa('connect', 'bot', '--phone', '+1 555 123 4567', '--json');
    const code = await proc.waitForEvent('code');
    expect(code.code).toMatch(/^[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}$/);
    expect(proc.events.some((e) => e.event === 'qr')).toBe(false);
    await server.enterPairingCode(code.code as string, '15551234567');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(proc.events.map((e) => e.event)).toEqual(['code', 'paired', 'open']);
    expect(await status()).toMatchObject({ state: 'paired', phone: '15551234567' });
  });

  it('keeps the credentials when wa is killed with SIGKILL right after pairing', async () => {
    const proc = wa('connect', 'bot', '--json');
    const qr = await proc.waitForEvent('qr');
    await server.scanQr(qr.qr as string, PHONE); // resolves once the server has registered the device
    await proc.waitForEvent('paired');
    proc.kill('SIGKILL');
    await proc.exited;
    expect((await status()).state).toBe('paired');
    const again = wa('connect', 'bot', '--json');
    expect(await again.exited).toEqual({ code: 0, signal: null });
    expect(again.events.map((e) => e.event)).toEqual(['open']);
  });

  it('stops with exit 3 and logged_out when the device was removed on the phone; the next connect pairs anew', async () => {
    await pairByQr();
    const jid = server.devices()[0]!.jid;
    server.removeDevice(jid);
    const res = await cli('connect', 'bot');
    expect(res.code).toBe(3);
    expect(res.stderr).toContain("Error: session 'bot' is logged out by WhatsApp");
    expect(res.stderr).toContain('Try: wa connect bot');
    expect(await status()).toMatchObject({ state: 'logged_out', lastDisconnect: { code: 401 } });
    expect((await cli('status', 'bot')).code).toBe(3);
    expect(authRowCount()).toBeGreaterThan(0); // credentials kept until the next connect or logout

    const fresh = wa('connect', 'bot', '--json');
    const qr = await fresh.waitForEvent('qr');
    await server.scanQr(qr.qr as string, { number: '15550001111', name: 'Bo' });
    expect(await fresh.exited).toEqual({ code: 0, signal: null });
    expect(await status()).toMatchObject({ state: 'paired', phone: '15550001111' });
  });

  it('exits 4 and stays unpaired with nothing stored when the QR codes run out', async () => {
    server.refsPerPairDevice = 0; // Baileys ends at once with "QR refs attempts ended"
    const res = await cli('connect', 'bot', '--json');
    expect(res.code).toBe(4);
    expect(JSON.parse(res.stdout.trim().split('\n').pop()!)).toMatchObject({ event: 'error', code: 'E_QR_EXPIRED' });
    expect(res.stderr).toContain('Error: no QR code was scanned before they ran out; nothing was stored');
    expect(await status()).toMatchObject({ state: 'unpaired', owner: null });
    expect(authRowCount()).toBe(0);
  });

  it('exits 130 on Ctrl-C during pairing, with nothing half-stored and the lease released', async () => {
    const proc = wa('connect', 'bot', '--phone', '15551234567', '--json');
    await proc.waitForEvent('code'); // Baileys has already put creds.me in memory by now
    proc.kill('SIGINT');
    expect(await proc.exited).toEqual({ code: 130, signal: null });
    expect(proc.stderr).toContain('Error: interrupted; nothing was stored');
    expect(await status()).toMatchObject({ state: 'unpaired', owner: null, connection: 'closed' });
    expect(authRowCount()).toBe(0);
    // and the next attempt starts clean: a QR, not a login as the half-registered phone number
    const next = wa('connect', 'bot', '--json');
    const qr = await next.waitForEvent('qr');
    await server.scanQr(qr.qr as string, PHONE);
    expect(await next.exited).toEqual({ code: 0, signal: null });
  });

  it('exits 4 after --timeout with nothing stored', async () => {
    const res = await cli('connect', 'bot', '--timeout', '2');
    expect(res.code).toBe(4);
    expect(res.stderr).toContain('Error: no phone linked within 2s; nothing was stored');
    expect(authRowCount()).toBe(0);
  });

  it('refuses a session another live process owns (exit 6), and --takeover takes it', async () => {
    const first = wa('connect', 'bot', '--json');
    await first.waitForEvent('qr');
    expect(await status()).toMatchObject({ owner: { host: expect.any(String) as string, pid: first.child.pid } });

    const busy = await cli('connect', 'bot');
    expect(busy.code).toBe(6);
    expect(busy.stderr).toMatch(/Error: session 'bot' is in use by connect-[0-9a-f]{8} \(host .+, pid \d+\)/);
    expect(busy.stderr).toContain('--takeover');

    const second = wa('connect', 'bot', '--json', '--takeover');
    const qr = await second.waitForEvent('qr');
    // The first owner notices within one renewal (10 s) and stops without fighting back.
    expect(await first.exited).toEqual({ code: 6, signal: null });
    expect(first.stderr).toContain("session 'bot' was taken over by another process");
    await server.scanQr(qr.qr as string, PHONE);
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(await status()).toMatchObject({ state: 'paired', owner: null });
  });

  it('logs out: WhatsApp forgets the device, credentials and keys are deleted, state unpaired', async () => {
    await pairByQr();
    const res = await cli('logout', 'bot');
    expect(res).toMatchObject({ code: 0, stdout: "Logged out 'bot': the device was unlinked and its keys deleted.\n" });
    await server.waitFor(() => server.devices().every((d) => d.removed), 5000);
    expect(authRowCount()).toBe(0);
    expect(await status()).toMatchObject({ state: 'unpaired', jid: null, owner: null });
  });

  it('logout with WhatsApp unreachable: exit 4 and nothing changed, unless --force', async () => {
    await pairByQr();
    const before = authRowCount();
    const unreachable = { ...env, WA_WS_URL: 'ws://127.0.0.1:9/ws/chat' };
    const refused = await runWa(['logout', 'bot', '--timeout', '5'], { env: unreachable });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain("cannot reach WhatsApp to unlink 'bot'");
    expect(refused.stderr).toContain('Try: wa logout bot --force');
    expect(authRowCount()).toBe(before);
    const forced = await runWa(['logout', 'bot', '--force', '--timeout', '5'], { env: unreachable });
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain('Warning: could not reach WhatsApp');
    expect(authRowCount()).toBe(0);
    expect((await status()).state).toBe('unpaired');
  });

  it('validates its flags before touching anything', async () => {
    expect((await cli('connect', 'bot', '--timeout', 'soon')).code).toBe(2);
    expect((await cli('connect', 'bot', '--phone', '12ab')).code).toBe(2);
    expect((await cli('connect', 'ghost')).code).toBe(2);
    expect((await cli('logout', 'ghost')).code).toBe(2);
  });
});
