/**
 * better-sqlite3 is synchronous: a write that waits for another process's lock inside SQLite (busy_timeout)
 * stops the whole event loop. The store must wait asynchronously instead (src/store/sqlite.ts run()).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDir } from '../helpers/temp.js';
import { ROOT } from '../helpers/processes.js';

const HOLD_MS = 2000;

/** Another process takes the write lock (BEGIN IMMEDIATE), says "locked", and commits after HOLD_MS. */
function holdWriteLock(path: string): Promise<{ released: Promise<void> }> {
  const script = `
    import { createRequire } from 'node:module';
    const Database = createRequire(process.cwd() + '/package.json')('better-sqlite3');
    const db = new Database(${JSON.stringify(path)});
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO wa_meta (key, value) VALUES ('holder', 'x')").run();
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); }, ${HOLD_MS});
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const released = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('locked')) resolve({ released });
    });
    child.on('error', reject);
  });
}

describe('SQLite store under another process lock', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('keeps the event loop ticking while a write waits for the lock, and then commits the write', async () => {
    const path = join(dir.path, 'wa.db');
    const store = new SqliteStore(path);
    await store.createSession('s', null);
    const { released } = await holdWriteLock(path);

    let last = Date.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const at = Date.now();
      maxGap = Math.max(maxGap, at - last);
      last = at;
    }, 50);
    const started = Date.now();
    try {
      await store.writeValues('s', [['pre-key-1', '"after the lock"']]);
    } finally {
      clearInterval(timer);
    }
    // The gap since the last tick counts too: a loop blocked until the write returned never ticked at all.
    maxGap = Math.max(maxGap, Date.now() - last);
    const waited = Date.now() - started;
    await released;

    // The write really waited for the other process (so the loop was measured while it waited) ...
    expect(waited).toBeGreaterThan(HOLD_MS / 2);
    // ... and the loop never stalled for anything near the hold (the old code blocked it the whole 2 s).
    expect(maxGap).toBeLessThan(1000);
    expect(await store.readValues('s', ['pre-key-1'])).toEqual(new Map([['pre-key-1', '"after the lock"']]));
    expect(await store.getMeta('holder')).toBe('x');
    await store.close();
  });
});
