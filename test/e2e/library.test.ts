/**
 * startSessions() end to end (README "Library"): bots that import 'wa' by its package name (dist/, so
 * `npm run build` first) run as their own processes against the test server, whose simulated phones send
 * real encrypted messages and decrypt the replies. The first bot is the README's example, read from the
 * README itself, so the documented code is the tested code.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openTestStore, pairSession } from '../helpers/pair.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { ROOT } from '../helpers/processes.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { until } from '../helpers/until.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

const PHONE = '15550008881'; // a contact's simulated phone
const BOT_A = '15550008771';
const BOT_B = '15550008772';
const BOT_C = '15550008773';
const BOT_PG = '15550008774';

/** Short leases and discovery so a restart after SIGKILL takes the session within seconds. */
const FAST_TIMING = {
  keepAliveMs: 2000,
  livenessGraceMs: 2000,
  leaseTtlMs: 3000,
  leaseRenewMs: 1000,
  discoveryMs: 500,
};

/** The first ```js block of the README's "Library" section: the echo bot, as published. */
function readmeBot(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Library\n');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const block = /\n```js\n([\s\S]*?)\n```\n/.exec(section)?.[1];
  if (start < 0 || !block) throw new Error('no ```js block under "## Library" in README.md');
  return block;
}

type Status = {
  id: string;
  connection: string;
  owner: { id: string; host: string; pid: number } | null;
};
type Event = Record<string, unknown> & { type: string; cursor: string; id?: string; text?: string; status?: string };

describe('startSessions() in a bot of its own', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: TestServer;
  const bots: WaProcess[] = [];

  /** A directory where `import … from 'wa'` resolves to this package (as after `npm install wa`). */
  const botDir = async (name: string, script: string): Promise<{ cwd: string; script: string }> => {
    const cwd = join(dir.path, name);
    await mkdir(join(cwd, 'node_modules'), { recursive: true });
    await symlink(ROOT, join(cwd, 'node_modules', 'wa'), 'dir');
    await writeFile(join(cwd, 'bot.mjs'), script);
    return { cwd, script: join(cwd, 'bot.mjs') };
  };
  const startBot = (at: { cwd: string; script: string }, env: Record<string, string>): WaProcess => {
    const bot = new WaProcess([], env, at);
    bots.push(bot);
    return bot;
  };
  const status = async (db: string, id: string): Promise<Status> => {
    const res = await runWa(['status', id, '--json'], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return JSON.parse(res.stdout) as Status;
  };
  const openBy = (db: string, id: string, pid: number | undefined) => async () => {
    const s = await status(db, id);
    return s.connection === 'open' && s.owner?.pid === pid ? s : undefined;
  };
  const listen = async (db: string, id: string): Promise<Event[]> => {
    const res = await runWa(['listen', id, '--json'], { env: { WA_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    return res.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
  };
  const fromPhone = async (to: string, text: string): Promise<string> =>
    (await server.sendFromPhone(PHONE, to, text)).id;

  beforeAll(async () => {
    dir = await tempDir();
    server = await startTestServer({ knownNumbers: [PHONE] });
  }, 60_000);
  afterEach(() => {
    for (const bot of bots.splice(0)) bot.kill('SIGKILL');
  });
  afterAll(async () => {
    await server.close();
    await dir.remove();
  });

  it("the README's echo bot answers a message and stops on SIGTERM by itself, releasing the session", async () => {
    const db = join(dir.path, 'echo.db');
    await pairSession(server, db, 'a', BOT_A);
    const at = await botDir('echo', readmeBot());
    const bot = startBot(at, waEnv(server, db));
    const owned = await until(openBy(db, 'a', bot.child.pid), 'the bot owning session a, open', 30_000);
    expect(owned.owner).toMatchObject({ id: expect.stringMatching(/^library-/), host: hostname() });

    const id = await fromPhone(BOT_A, 'ping');
    const reply = await until(
      // The phone's own 'ping' is not among what it received; the echo comes from a's LID (WhatsApp knows one).
      () => server.phoneMessages(PHONE).find((m) => m.text === 'ping'),
      'the echo on the phone',
    ).catch(async (error: unknown) => {
      throw new Error(`${String(error)}; bot stderr: ${bot.stderr}; events: ${JSON.stringify(await listen(db, 'a'))}`);
    });
    expect(reply.fromMe).toBe(false);
    const events = await listen(db, 'a');
    // Replied through the outbox, keyed by the event's cursor, and the phone's device received it.
    const message = events.find((e) => e.type === 'message' && e.id === id)!;
    expect(message).toMatchObject({ text: 'ping', fromMe: false, raw: { key: { id } } });
    expect(events.filter((e) => e.type === 'status' && e.id === reply.id).map((e) => e.status)).toContain('sent');
    const store = await openTestStore(db);
    expect((await store.getOutgoing('a', reply.id))?.key).toBe(message.cursor);
    await store.close();
    // The cursor file holds the last event handled, at or after the message's own.
    await until(
      async () =>
        BigInt(await readFile(join(at.cwd, 'echo-bot.cursor'), 'utf8').catch(() => '0')) >= BigInt(message.cursor),
      'the cursor saved',
    );

    bot.kill('SIGTERM');
    const exited = await Promise.race([bot.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    expect(exited, bot.stderr).toEqual({ code: 0, signal: null });
    expect(await status(db, 'a')).toMatchObject({ connection: 'closed', owner: null });
    expect(server.phoneMessages(PHONE).filter((m) => m.text === 'ping')).toHaveLength(1);
  }, 90_000);

  it.skipIf(!pgUrl)(
    "the README's echo bot on PostgreSQL: the same bot, WA_DB a postgres:// URL",
    async () => {
      const schema = await freshSchema();
      try {
        await pairSession(server, schema.url, 'pg', BOT_PG);
        const bot = startBot(await botDir('echo-pg', readmeBot()), waEnv(server, schema.url));
        await until(openBy(schema.url, 'pg', bot.child.pid), 'the bot owning session pg, open', 30_000);
        await fromPhone(BOT_PG, 'ping over postgres');
        await until(
          () => server.phoneMessages(PHONE).find((m) => m.text === 'ping over postgres'),
          'the echo on the phone',
        );
        bot.kill('SIGTERM');
        expect(await bot.exited, bot.stderr).toEqual({ code: 0, signal: null });
        expect(await status(schema.url, 'pg')).toMatchObject({ connection: 'closed', owner: null });
      } finally {
        await schema.drop();
      }
    },
    90_000,
  );

  it('a bot restarted mid-stream (SIGKILL) resumes from its cursor: every message event seen at least once, in cursor order, none missing', async () => {
    const db = join(dir.path, 'resume.db');
    const jid = await pairSession(server, db, 'b', BOT_B);
    // Prints each message event, then takes its time over it before it saves the cursor: killed
    // mid-stream, it leaves stored events unseen and the last one seen maybe unsaved.
    const at = await botDir(
      'resume',
      `
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { startSessions } from 'wa';
const wa = await startSessions({ db: process.env.WA_DB, wsUrl: process.env.WA_WS_URL, timing: ${JSON.stringify(FAST_TIMING)} });
const since = existsSync('cursor') ? readFileSync('cursor', 'utf8') : undefined;
console.log(JSON.stringify({ started: since ?? null }));
for await (const event of wa.events({ since })) {
  if (event.type === 'message') {
    console.log(JSON.stringify({ cursor: event.cursor, id: event.id, text: event.text, replay: event.replay }));
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
  writeFileSync('cursor', event.cursor);
}
`,
    );
    const env = waEnv(server, db);
    const seen = (bot: WaProcess): Event[] => bot.lines.filter((l) => 'cursor' in l) as Event[];

    const first = startBot(at, env);
    await until(openBy(db, 'b', first.child.pid), 'the first bot owning b', 30_000);
    const live: string[] = [];
    for (let i = 1; i <= 5; i++) live.push(await fromPhone(BOT_B, `live ${i}`));
    // All five stored (nothing left in the receipt-before-commit gap), the bot still at the first ones.
    await until(async () => (await listen(db, 'b')).filter((e) => e.type === 'message').length === 5, 'five stored');
    await first.waitForLine((l) => l.id === live[0]);
    first.kill('SIGKILL');
    await first.exited;
    const savedAtKill = await readFile(join(at.cwd, 'cursor'), 'utf8').catch(() => undefined);
    expect(seen(first).length).toBeLessThan(5); // killed mid-stream

    const down: string[] = [];
    for (let i = 1; i <= 3; i++) down.push(await fromPhone(BOT_B, `while down ${i}`));
    await until(() => down.every((id) => server.queued(jid).some((q) => q.id === id)), 'the copies queued for b');

    const second = startBot(at, env);
    await until(() => second.lines.find((l) => 'started' in l), 'the second bot started');
    expect(second.lines.find((l) => 'started' in l)).toEqual({ started: savedAtKill ?? null });
    const all = [...live, ...down];
    await until(
      () => all.every((id) => [...seen(first), ...seen(second)].some((e) => e.id === id)),
      'every message seen by the bot',
      60_000,
    );

    const stored = (await listen(db, 'b')).filter((e) => e.type === 'message');
    expect(new Set(stored.map((e) => e.id))).toEqual(new Set(all));
    expect(stored.filter((e) => down.includes(e.id!)).every((e) => e.replay === true)).toBe(true);
    // In cursor order within each run; the second starts right after the saved cursor and misses nothing after it.
    for (const run of [seen(first), seen(second)]) {
      const cursors = run.map((e) => BigInt(e.cursor));
      expect(cursors).toEqual([...cursors].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      expect(new Set(cursors).size).toBe(cursors.length);
    }
    const after = stored.filter((e) => savedAtKill === undefined || BigInt(e.cursor) > BigInt(savedAtKill));
    expect(seen(second).map((e) => e.cursor)).toEqual(after.map((e) => e.cursor));
    expect(new Set([...seen(first), ...seen(second)].map((e) => e.id))).toEqual(new Set(all));
  }, 120_000);

  it('close() releases the lease (wa status shows no owner) and the process exits by itself', async () => {
    const db = join(dir.path, 'close.db');
    await pairSession(server, db, 'c', BOT_C);
    const at = await botDir(
      'close',
      `
import { startSessions } from 'wa';
const wa = await startSessions({ db: process.env.WA_DB, wsUrl: process.env.WA_WS_URL, sessions: ['c'], timing: ${JSON.stringify(FAST_TIMING)} });
for (;;) {
  const status = await wa.status();
  if (status.sessions.some((s) => s.ownedHere && s.connection === 'open' && wa.socket(s.id))) {
    console.log(JSON.stringify({ status }));
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
process.once('SIGUSR2', async () => {
  const started = Date.now();
  await wa.close();
  console.log(JSON.stringify({ closed: Date.now() - started, resources: process.getActiveResourcesInfo() }));
});
`,
    );
    const bot = startBot(at, waEnv(server, db));
    const { status: own } = (await bot.waitForLine((l) => 'status' in l, 30_000)) as {
      status: { owner: string; sessions: Array<Status & { ownedHere: boolean }> };
    };
    expect(own.sessions).toEqual([
      expect.objectContaining({
        id: 'c',
        ownedHere: true,
        connection: 'open',
        owner: expect.objectContaining({ id: own.owner }),
      }),
    ]);
    // The CLI sees the same owner: this host (the same identity wa's own processes record) and the bot's pid.
    expect((await status(db, 'c')).owner).toMatchObject({ id: own.owner, host: hostname(), pid: bot.child.pid });

    bot.kill('SIGUSR2');
    const closed = await bot.waitForLine((l) => 'closed' in l, 15_000);
    // Nothing but stdout and stderr keeps it alive: no timer, socket or database handle is left.
    expect(closed.resources, JSON.stringify(closed)).toEqual(['PipeWrap', 'PipeWrap']);
    const closedAt = Date.now();
    const exited = await Promise.race([bot.exited, new Promise((r) => setTimeout(() => r('still running'), 5_000))]);
    expect(exited, JSON.stringify(closed)).toEqual({ code: 0, signal: null });
    expect(Date.now() - closedAt).toBeLessThan(5_000);
    expect(await status(db, 'c')).toMatchObject({ connection: 'closed', owner: null });
  }, 90_000);
});
