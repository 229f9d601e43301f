import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Another process holding the SQLite write lock (`BEGIN IMMEDIATE`) on `db` for `ms`, as a long writer
 * (a backup, a migration, a stuck tool) would. Resolves once the lock is held; `released` once it is not.
 */
export async function holdWriteLock(db: string, ms: number): Promise<{ child: ChildProcess; released: Promise<void> }> {
  const script = `
    import Database from 'better-sqlite3';
    const db = new Database(process.argv[1]);
    db.pragma('busy_timeout = 10000');
    db.exec('BEGIN IMMEDIATE');
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); process.stdout.write('released\\n'); }, Number(process.argv[2]));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, db, String(ms)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const seen = (word: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (out.includes(word)) resolve();
      };
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        check();
      });
      child.on('exit', (code) => (out.includes(word) ? resolve() : reject(new Error(`lock holder exited ${code}`))));
    });
  const locked = seen('locked');
  const released = seen('released');
  await locked;
  return { child, released };
}
