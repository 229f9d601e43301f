import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import { captureStream } from '../helpers/capture-stream.js';
import { tempDir } from '../helpers/temp.js';

/** The CLI in-process: argv and env in, exit code and both streams out (no process spawned). */
async function wa(argv: string[], env: Record<string, string> = {}) {
  const stdout = captureStream();
  const stderr = captureStream();
  const code = await run({
    argv,
    env: { NO_COLOR: '1', ...env },
    stdout,
    stderr,
    signal: new AbortController().signal,
    host: 'test-host',
    pid: 4242,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('run(io): argv → exit code and output', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await tempDir();
    env = { WA_DB: `${dir.path}/wa.db` };
  });
  afterAll(async () => {
    await dir.remove();
  });

  it.each<[string, string[], Record<string, string>, number, RegExp]>([
    ['no arguments prints help', [], {}, 2, /Usage: wa/],
    ['an unknown command', ['frobnicate'], {}, 2, /Error: unknown command 'frobnicate'/],
    ['an invalid id', ['add', '../x'], {}, 2, /Error: invalid session id "\.\.\/x"/],
    ['an empty id', ['status', ''], {}, 2, /Error: invalid session id ""/],
    ['a hex timeout', ['connect', 'bot', '--timeout', '0x10'], {}, 2, /--timeout must be a number of seconds/],
    ['a zero timeout', ['logout', 'bot', '--timeout', '0'], {}, 2, /--timeout must be a number of seconds/],
    ['a 00-prefixed phone', ['connect', 'bot', '--phone', '0049151123456'], {}, 2, /--phone must be a phone number/],
    ['a bad --http', ['serve', '--http', '99999'], {}, 2, /invalid --http address "99999"/],
    ['a bad serve id', ['serve', 'ok', 'bad id'], {}, 2, /invalid session id "bad id"/],
    [
      'an inconsistent WA_TIMING',
      ['status'],
      { WA_TIMING: 'leaseRenewMs=30000,leaseTtlMs=10000' },
      2,
      /leaseRenewMs must be less than leaseTtlMs/,
    ],
    ['an empty WA_API_TOKEN', ['status'], { WA_API_TOKEN: '' }, 2, /WA_API_TOKEN is set but empty/],
    ['a bad PORT', ['status'], { PORT: '80a' }, 2, /invalid PORT "80a"/],
    ['a bad log level', ['status', '--log-level', 'loud'], {}, 2, /invalid log level "loud"/],
  ])('%s → exit %#', async (_what, argv, extraEnv, code, stderr) => {
    const res = await wa(argv, { ...env, ...extraEnv });
    expect(res.stderr).toMatch(stderr);
    expect(res.code).toBe(code);
    expect(res.stdout).toBe(argv.length === 0 ? '' : res.stdout);
  });

  it('usage errors leave stdout empty, also in --json mode', async () => {
    const res = await wa(['add', '../x', '--json'], env);
    expect(res).toMatchObject({ code: 2, stdout: '' });
  });

  it('--version prints the package version on stdout', async () => {
    const res = await wa(['--version']);
    expect(res.code).toBe(0);
    expect(res.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('add, status (table and JSON, exit 3 unpaired), rm', async () => {
    expect(await wa(['status'], env)).toMatchObject({ code: 0, stdout: 'No sessions yet. Add one: wa add my-bot\n' });
    expect(await wa(['add', 'bot', '--label', 'the bot'], env)).toMatchObject({
      code: 0,
      stdout: "Added session 'bot'. Next: wa connect bot\n",
    });
    expect((await wa(['add', 'bot'], env)).code).toBe(2);
    const table = await wa(['status'], env);
    expect(table.stdout.split('\n')[0]).toBe('ID   STATE     CONNECTION  PHONE  NAME  OWNER  LAST DISCONNECT');
    expect(table.stdout.split('\n')[1]).toBe('bot  unpaired  closed      -      -     -      -');
    const one = await wa(['status', 'bot', '--json'], env);
    expect(one.code).toBe(3);
    expect(JSON.parse(one.stdout)).toMatchObject({ id: 'bot', label: 'the bot', state: 'unpaired', owner: null });
    const all = JSON.parse((await wa(['status', '--json'], env)).stdout) as { db: string; sessions: unknown[] };
    expect(all).toMatchObject({ db: `${dir.path}/wa.db`, sessions: [{ id: 'bot' }] });
    expect(await wa(['status', 'ghost'], env)).toMatchObject({ code: 2 });
    expect(await wa(['rm', 'bot', '--json'], env)).toMatchObject({ code: 0, stdout: '{"id":"bot","removed":true}\n' });
  });
});
