import { execFile } from 'node:child_process';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

const exec = promisify(execFile);
const TOKEN = 'pairing-page-test-token-0123456789';
// Fast discovery, so the paired session is taken at once; the rest as in production.
// QRs live 8 s here (Baileys' own: 60 s, then 20 s), so a rotation is seen without waiting a minute.
const TIMING = 'discoveryMs=1000,qrTimeoutMs=8000';

/** Debian's Chromium (README "Development"; .ci/run installs it), flags for a closed network. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Follows `GET /sessions/{id}/pair` with the bearer token: every `data:` message, parsed. */
function followPairing(url: string): { events: Array<Record<string, unknown>>; close(): void } {
  const events: Array<Record<string, unknown>> = [];
  const req = httpRequest(url, { headers: { authorization: `Bearer ${TOKEN}` }, agent: false }, (res) => {
    let buffer = '';
    res.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split('\n'))
          if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as Record<string, unknown>);
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return { events, close: () => req.destroy() };
}

const until = async <T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('the pairing page in a real browser (Debian Chromium driven by playwright-core)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  let db: string;
  let serve: WaProcess;
  let base: string;
  let owner: string;
  let context: BrowserContext;
  let page: Page;
  const secrets: string[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer();
    db = join(dir.path, 'wa.db');
    serve = new WaProcess(
      ['serve', '--http', '127.0.0.1:0'],
      waEnv(server, db, { WA_API_TOKEN: TOKEN, WA_TIMING: TIMING }),
    );
    const started = await serve.waitForLine((l) => l.msg === 'wa serve started');
    base = String(started.http);
    owner = String(started.owner);
    context = await chromium.launchPersistentContext(join(dir.path, 'chromium-profile'), {
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 390, height: 844 }, // a phone screen
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  afterAll(async () => {
    await context?.close();
    serve?.kill('SIGTERM');
    await serve?.exited;
    await server?.close();
    await dir?.remove();
  });

  /**
   * Until the QR image is visible and drawn (and its address passes `which`). Polled from here: the page's
   * CSP forbids the string evaluation page.waitForFunction would need for a predicate.
   */
  const qrShown = (which: (src: string) => boolean): Promise<true> =>
    until(
      async () => {
        const img = await page
          .locator('#qr')
          .evaluate((el: { complete: boolean; naturalWidth: number; src: string; offsetParent: unknown }) => ({
            drawn: el.complete && el.naturalWidth > 0 && el.offsetParent !== null,
            src: el.src,
          }));
        return img.drawn && which(img.src) ? true : undefined;
      },
      20_000,
      'the QR image',
    );

  const decodeQr = async (name: string): Promise<string> => {
    const image = join(dir.path, name);
    await page.locator('#qr').screenshot({ path: image });
    const { stdout } = await exec('zbarimg', ['--raw', '-q', image]);
    return stdout.trim();
  };

  it('without a login cookie: / is the login page with a password input labelled "token"; the API is 401; a token in the URL is refused', async () => {
    const login = await call(`${base}/`);
    expect(login.status).toBe(200);
    expect(login.headers['content-type']).toMatch(/^text\/html/);
    expect(login.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(login.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(login.headers['referrer-policy']).toBe('same-origin');
    expect(login.headers['x-frame-options']).toBe('DENY');
    expect(login.headers['cache-control']).toBe('no-store');

    await page.goto(`${base}/`);
    const field = page.getByLabel('token');
    expect(await field.getAttribute('type')).toBe('password');
    for (const path of ['/sessions', '/assets/app.js', '/sessions/x/pair/qr.svg'])
      expect((await call(`${base}${path}`)).status, path).toBe(401);
    for (const path of [`/?token=${TOKEN}`, `/sessions?token=${TOKEN}`]) {
      const refused = await call(`${base}${path}`);
      expect(refused.status, path).toBe(403);
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'E_TOKEN_IN_URL' });
    }

    await field.fill('wrong-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Wrong token');
  });

  it('log in, add a session, pair with QR: the image decodes to the payload Baileys produced, rotates, the phone scans it, the page says "Connected as", the daemon owns the session', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('token').fill(TOKEN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Add session' }).waitFor();
    const cookies = await context.cookies(base);
    const cookie = cookies.find((c) => c.name === 'wa_session')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookie.value).not.toContain(TOKEN);
    expect(page.url()).not.toContain(TOKEN);

    await page.getByLabel('Session id').fill('bot');
    await page.getByRole('button', { name: 'Add session' }).click();
    const row = page.locator('li[data-session="bot"]');
    await expect.poll(() => row.textContent()).toContain('unpaired');

    const clickedAt = Date.now();
    await row.getByRole('button', { name: 'Pair with QR' }).click();
    await qrShown(() => true);
    const firstQrMs = Date.now() - clickedAt;
    console.info(`Pair with QR → first QR on screen: ${firstQrMs} ms`);

    const box = (await page.locator('#qr').boundingBox())!;
    expect(box.width).toBeGreaterThanOrEqual(200);
    expect(box.height).toBeGreaterThanOrEqual(200);
    await expect.poll(() => page.locator('#countdown').textContent()).toMatch(/^Expires in \d+s$/);

    const stream = followPairing(`${base}/sessions/bot/pair`);
    try {
      // A stream opened after the pairing began starts with the QR on screen.
      const first = await until(() => stream.events.find((e) => e.event === 'qr'), 10_000, 'the current QR');
      const firstQr = String(first.qr);
      secrets.push(firstQr);
      expect(await decodeQr('qr-1.png')).toBe(firstQr);

      // Baileys shows the next QR when the first expires (8 s here): the page swaps it at once.
      const second = await until(() => stream.events.filter((e) => e.event === 'qr')[1], 30_000, 'the rotated QR');
      const secondQr = String(second.qr);
      secrets.push(secondQr);
      expect(secondQr).not.toBe(firstQr);
      await qrShown((src) => src.endsWith('n=2'));
      expect(await decodeQr('qr-2.png')).toBe(secondQr);

      await server.scanQr(secondQr, { number: '15551230001', name: 'Ada' });
      await expect
        .poll(() => page.getByRole('status').textContent(), { timeout: 20_000 })
        .toBe('Connected as +15551230001 (Ada)');
      // The test's own stream is a second reader: its last event may arrive a moment after the page's.
      await until(() => stream.events.find((e) => e.event === 'open'), 10_000, "the stream's open event");
      expect(stream.events.map((e) => e.event)).toEqual(['qr', 'qr', 'paired', 'open']);
    } finally {
      stream.close();
    }

    const status = await until(
      async () => {
        const result = await runWa(['status', 'bot', '--json'], { env: { WA_DB: db } });
        const view = JSON.parse(result.stdout) as { state: string; connection: string; owner: { id: string } | null };
        return view.state === 'paired' && view.connection === 'open' && view.owner?.id === owner ? view : undefined;
      },
      20_000,
      'the daemon to own the session, open',
    );
    expect(status.owner?.id).toBe(owner);
    await expect.poll(() => row.textContent()).toContain('paired');
  }, 150_000);

  it('pair with phone number: digits only in the field, the code shown as XXXX-XXXX, typed on the phone, "Connected as"', async () => {
    await page.getByLabel('Session id').fill('bot2');
    await page.getByRole('button', { name: 'Add session' }).click();
    const row = page.locator('li[data-session="bot2"]');
    await row.getByRole('button', { name: 'Pair with phone number' }).click();
    const phone = page.getByLabel(/Phone number/);
    await phone.pressSequentially('+1 555-123 0002x');
    expect(await phone.inputValue()).toBe('15551230002');
    await page.getByRole('button', { name: 'Get pairing code' }).click();
    const code = await until(
      async () => {
        const text = (await page.locator('#code').textContent()) ?? '';
        return /^[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(text) ? text : undefined;
      },
      20_000,
      'the pairing code',
    );
    secrets.push(code, code.replace('-', ''));
    await server.enterPairingCode(code, '15551230002');
    await expect
      .poll(() => page.getByRole('status').textContent(), { timeout: 20_000 })
      .toMatch(/^Connected as \+15551230002/);
    await until(
      async () => {
        const result = await runWa(['status', 'bot2', '--json'], { env: { WA_DB: db } });
        const view = JSON.parse(result.stdout) as { connection: string; owner: { id: string } | null };
        return view.connection === 'open' && view.owner?.id === owner ? view : undefined;
      },
      20_000,
      'the daemon to own bot2',
    );
  });

  it('refuses a foreign Origin on state changes (cookie or bearer), a cookie without Origin, and Origin: null', async () => {
    const cookie = (await context.cookies(base)).find((c) => c.name === 'wa_session')!;
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ id: 'evil' });
    const attempts: Array<Record<string, string>> = [
      { cookie: `wa_session=${cookie.value}`, origin: 'http://evil.example' },
      { cookie: `wa_session=${cookie.value}`, origin: 'null' },
      { cookie: `wa_session=${cookie.value}` },
      { authorization: `Bearer ${TOKEN}`, origin: 'http://evil.example' },
    ];
    for (const headers of attempts) {
      const refused = await call(`${base}/sessions`, { method: 'POST', headers: { ...json, ...headers }, body });
      expect(refused.status, JSON.stringify(headers)).toBe(403);
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'E_ORIGIN' });
    }
    const login = await call(`${base}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
      body: `token=${TOKEN}`,
    });
    expect(login.status).toBe(403);
    // Our own Origin with the cookie, and a bearer client without Origin, are fine.
    const own = await call(`${base}/sessions`, {
      method: 'POST',
      headers: { ...json, cookie: `wa_session=${cookie.value}`, origin: base },
      body: JSON.stringify({ id: 'own-origin' }),
    });
    expect(own.status).toBe(201);
    const bearer = await call(`${base}/sessions/own-origin`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(bearer.status).toBe(200);
    expect((await runWa(['status', 'evil', '--json'], { env: { WA_DB: db } })).code).toBe(2);
  });

  it('no QR payload, pairing code or token in anything the daemon printed', () => {
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    const output = `${serve.stdout}\n${serve.stderr}`;
    expect(output).toContain('pairing started');
    for (const secret of [...secrets, TOKEN]) expect(output).not.toContain(secret);
  });

  it('with no WA_API_TOKEN, / says how to turn the page on', async () => {
    const plain = new WaProcess(['serve', '--http', '127.0.0.1:0'], waEnv(server, join(dir.path, 'other.db')));
    try {
      const started = await plain.waitForLine((l) => l.msg === 'wa serve started');
      const answer = await call(`${String(started.http)}/`);
      expect(answer.status).toBe(403);
      expect(answer.headers['content-type']).toMatch(/^text\/html/);
      expect(answer.body).toContain('WA_API_TOKEN');
      expect(
        (await call(`${String(started.http)}/login`, { method: 'POST', headers: { origin: String(started.http) } }))
          .status,
      ).not.toBe(303);
    } finally {
      plain.kill('SIGTERM');
      await plain.exited;
    }
  });
});
