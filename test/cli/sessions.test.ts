import Database from 'better-sqlite3';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';

describe('wa add / status / rm', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  beforeEach(async () => {
    dir = await tempDir();
    env = { WA_DB: join(dir.path, 'state', 'wa.db') };
  });
  afterEach(() => dir.remove());

  it('prints help and version, and exits 2 on bad usage', async () => {
    expect(await runWa(['--version'])).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) as string,
    });
    const help = await runWa(['--help']);
    expect(help.code).toBe(0);
    for (const cmd of ['add', 'status', 'rm', 'import', 'export']) expect(help.stdout).toContain(cmd);
    expect((await runWa([])).code).toBe(2);
    const unknown = await runWa(['frobnicate'], { env });
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toContain("Error: unknown command 'frobnicate'");
    const badFlag = await runWa(['status', '--nope'], { env });
    expect(badFlag).toMatchObject({ code: 2, stdout: '' });
    expect(badFlag.stderr).toMatch(/^Error: unknown option '--nope'\nTry: wa --help\n$/);
    expect(await runWa(['--log-level', 'loud', 'status'], { env })).toMatchObject({ code: 2 });
    expect(await runWa(['status'], { env: { ...env, WA_WS_URL: 'http://x' } })).toMatchObject({ code: 2 });
  });

  it('adds a session, lists it, and reports it unpaired (exit 3)', async () => {
    expect(await runWa(['status'], { env })).toMatchObject({
      code: 0,
      stdout: 'No sessions yet. Add one: wa add my-bot\n',
    });
    const added = await runWa(['add', 'bot-1', '--label', 'support line'], { env });
    expect(added).toMatchObject({ code: 0, stdout: "Added session 'bot-1'. Next: wa connect bot-1\n", stderr: '' });
    expect(await runWa(['add', 'bot-1'], { env })).toMatchObject({
      code: 2,
      stderr: "Error: session 'bot-1' already exists\nTry: wa status bot-1\n",
    });

    const table = await runWa(['status'], { env });
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+CONNECTION\s+PHONE\s+NAME\s+OWNER\s+LAST DISCONNECT$/);
    expect(table.stdout).toMatch(/^bot-1\s+unpaired\s+closed/m);

    const list = await runWa(['status', '--json'], { env });
    const doc = JSON.parse(list.stdout) as { db: string; sessions: Array<Record<string, unknown>> };
    expect(doc.db).toBe(env.WA_DB);
    expect(doc.sessions).toEqual([
      {
        id: 'bot-1',
        label: 'support line',
        state: 'unpaired',
        jid: null,
        phone: null,
        name: null,
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as string,
        pairedAt: null,
        lastConnectedAt: null,
        lastDisconnect: null,
        connection: 'closed',
        owner: null,
      },
    ]);
    const one = await runWa(['--json', 'status', 'bot-1'], { env });
    expect(one.code).toBe(3);
    expect(JSON.parse(one.stdout)).toMatchObject({ id: 'bot-1', state: 'unpaired' });
    expect((await runWa(['status', 'bot-1'], { env })).stdout).toMatch(/^state:\s+unpaired$/m);
  });

  it('creates the database 0600 in a 0700 directory', async () => {
    await runWa(['add', 'a'], { env });
    expect((await stat(env.WA_DB!)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir.path, 'state'))).mode & 0o777).toBe(0o700);
  });

  it('reports a paired session (exit 0) with its phone and name, and shows owners and disconnects', async () => {
    await runWa(['add', 'p'], { env });
    const db = new Database(env.WA_DB!);
    db.prepare(
      "UPDATE wa_sessions SET state = 'paired', jid = '4915112345678:7@s.whatsapp.net', name = 'Bo', last_disconnect_code = 428, last_disconnect_reason = 'connection closed', last_disconnect_at = ? WHERE id = 'p'",
    ).run(new Date().toISOString());
    db.prepare("INSERT INTO wa_leases VALUES ('p', 'daemon-1', 'box', 4242, ?)").run(Date.now() + 30_000);
    db.prepare("UPDATE wa_sessions SET connection = 'open'").run();
    db.close();
    const res = await runWa(['status', 'p', '--json'], { env });
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      state: 'paired',
      phone: '4915112345678',
      name: 'Bo',
      connection: 'open',
      owner: { id: 'daemon-1', host: 'box', pid: 4242 },
      lastDisconnect: { code: 428, reason: 'connection closed' },
    });
    expect((await runWa(['status'], { env })).stdout).toMatch(
      /^p\s+paired\s+open\s+4915112345678\s+Bo\s+box:4242\s+428 connection closed \(\d+s ago\)$/m,
    );
  });

  it('treats an expired lease as no owner and the connection as closed', async () => {
    await runWa(['add', 'p'], { env });
    const db = new Database(env.WA_DB!);
    db.prepare("INSERT INTO wa_leases VALUES ('p', 'crashed', 'box', 1, ?)").run(Date.now() - 1000);
    db.prepare("UPDATE wa_sessions SET connection = 'open'").run();
    db.close();
    expect(JSON.parse((await runWa(['status', 'p', '--json'], { env })).stdout)).toMatchObject({
      connection: 'closed',
      owner: null,
    });
  });

  it.each([[''], ['../x'], ['a b'], ['.dot'], ['_under'], ['x'.repeat(65)], ['ünï']])(
    'refuses the session id %j with exit 2',
    async (id) => {
      for (const args of [
        ['add', id],
        ['status', id],
        ['rm', id],
        ['export', id, dir.path],
        ['import', id, dir.path],
      ]) {
        const res = await runWa(args, { env });
        expect(res.code, args.join(' ')).toBe(2);
        expect(res.stdout).toBe('');
        expect(res.stderr).toMatch(/^Error: invalid session id/);
      }
    },
  );

  it('accepts a 64-character id with dots, dashes and underscores', async () => {
    const id = `A${'b._-'.repeat(15)}xyz`;
    expect(id).toHaveLength(64);
    expect((await runWa(['add', id], { env })).code).toBe(0);
  });

  it('refuses unknown ids with exit 2 and a hint', async () => {
    await runWa(['add', 'known'], { env });
    for (const args of [
      ['status', 'ghost'],
      ['rm', 'ghost'],
      ['export', 'ghost', join(dir.path, 'out')],
    ]) {
      const res = await runWa(args, { env });
      expect(res).toMatchObject({ code: 2, stdout: '' });
      expect(res.stderr).toContain("Error: no session 'ghost'");
      expect(res.stderr).toContain('Try: wa add ghost');
    }
  });

  it('removes sessions; a paired one only with --force, a leased one not at all', async () => {
    await runWa(['add', 'u'], { env });
    await runWa(['add', 'p'], { env });
    const db = new Database(env.WA_DB!);
    db.prepare(
      "INSERT INTO whatsapp_auth (session_id, data_key, data_value) VALUES ('p', 'creds', '{\"account\":{},\"me\":{\"id\":\"1:1@s.whatsapp.net\"}}'), ('p', 'pre-key-1', '{}')",
    ).run();
    db.prepare("UPDATE wa_sessions SET state = 'paired' WHERE id = 'p'").run();
    db.close();

    expect(await runWa(['rm', 'u'], { env })).toMatchObject({ code: 0, stdout: "Removed session 'u'.\n" });
    const refused = await runWa(['rm', 'p'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('Try: wa logout p');

    const lease = new Database(env.WA_DB!);
    lease.prepare("INSERT INTO wa_leases VALUES ('p', 'd1', 'box', 99, ?)").run(Date.now() + 30_000);
    lease.close();
    const busy = await runWa(['rm', 'p', '--force'], { env });
    expect(busy.code).toBe(6);
    expect(busy.stderr).toContain('in use by d1 (host box, pid 99)');

    const free = new Database(env.WA_DB!);
    free.prepare('DELETE FROM wa_leases').run();
    free.close();
    expect(await runWa(['rm', 'p', '--force', '--json'], { env })).toMatchObject({
      code: 0,
      stdout: '{"id":"p","removed":true}\n',
    });
    const check = new Database(env.WA_DB!, { readonly: true });
    expect(check.prepare('SELECT count(*) FROM whatsapp_auth').pluck().get()).toBe(0);
    check.close();
    expect(JSON.parse((await runWa(['status', '--json'], { env })).stdout)).toMatchObject({ sessions: [] });
  });

  it('writes a large --json document to a pipe in full', async () => {
    await runWa(['add', 'seed'], { env });
    const db = new Database(env.WA_DB!);
    const insert = db.prepare('INSERT INTO wa_sessions (id, label, created_at) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) insert.run(`bot-${i}`, 'x'.repeat(100), new Date().toISOString());
    })();
    db.close();
    const res = await runWa(['status', '--json'], { env });
    expect(res.code).toBe(0);
    expect(res.stdout.length).toBeGreaterThan(300_000); // several pipe buffers: an early exit would cut it
    expect((JSON.parse(res.stdout) as { sessions: unknown[] }).sessions).toHaveLength(3001);
  });

  it('takes the database from --db over WA_DB over DATABASE_URL', async () => {
    const flagDb = join(dir.path, 'flag.db');
    await runWa(['--db', flagDb, 'add', 'from-flag'], { env });
    await runWa(['add', 'from-env'], { env: { ...env, DATABASE_URL: 'file-not-postgres' } });
    expect(JSON.parse((await runWa(['status', '--json', '--db', flagDb], { env })).stdout)).toMatchObject({
      db: flagDb,
      sessions: [{ id: 'from-flag' }],
    });
    expect(JSON.parse((await runWa(['status', '--json'], { env })).stdout)).toMatchObject({
      db: env.WA_DB,
      sessions: [{ id: 'from-env' }],
    });
    // With neither flag nor WA_DB, the default lives under the working directory.
    await runWa(['add', 'default'], { cwd: dir.path });
    expect((await stat(join(dir.path, 'data', 'wa.db'))).isFile()).toBe(true);
  });
});
