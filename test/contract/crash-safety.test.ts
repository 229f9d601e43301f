import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.js';

const WRITER = fileURLToPath(new URL('../helpers/crash-writer.js', import.meta.url));
const KILLS = 200;

/** Starts the writer, lets it commit for a random moment, then SIGKILLs it. Returns the batches it saw commit. */
function runAndKill(dbPath: string, run: number, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dbPath, String(run)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!timer && out.startsWith('ready\n')) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') return reject(new Error(`writer ended by itself: ${err}`));
      const acknowledged = out.split('\n').filter((l) => /^\d+$/.test(l)).length;
      resolve(acknowledged);
    });
  });
}

describe('crash safety', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterAll(() => dir.remove());

  it(`keeps every batch whole or absent across ${KILLS} SIGKILLs mid-commit`, { timeout: 300_000 }, async () => {
    const dbPath = join(dir.path, 'wa.db');
    const acknowledged: number[] = [];
    for (let run = 0; run < KILLS; run++) {
      // Mostly kill early, in the thick of commits; sometimes later.
      const delay = run % 10 === 0 ? 40 + (run % 60) : run % 17;
      acknowledged.push(await runAndKill(dbPath, run, delay));
    }

    const db = new Database(dbPath, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const rows = db
      .prepare("SELECT data_key, data_value FROM whatsapp_auth WHERE session_id = 'crash'")
      .all() as Array<{ data_key: string; data_value: string }>;
    db.close();

    const batches = new Map<string, { size: number; seen: number }>();
    for (const row of rows) {
      const v = JSON.parse(row.data_value) as { run: number; batch: number; size: number };
      const key = `${v.run}/${v.batch}`;
      const entry = batches.get(key) ?? { size: v.size, seen: 0 };
      entry.seen++;
      batches.set(key, entry);
    }
    const torn = [...batches].filter(([, b]) => b.seen !== b.size);
    expect(torn, 'batches partly written').toEqual([]);

    let killedMidCommit = 0;
    for (let run = 0; run < KILLS; run++) {
      const present = [...batches.keys()].filter((k) => k.startsWith(`${run}/`)).length;
      // Present batches are exactly 0..n-1 (no gaps), and every batch acknowledged before the kill survived it.
      for (let b = 0; b < present; b++) expect(batches.has(`${run}/${b}`), `run ${run} batch ${b}`).toBe(true);
      expect(present, `run ${run}`).toBeGreaterThanOrEqual(acknowledged[run]!);
      if (present > acknowledged[run]!) killedMidCommit++;
    }
    // Not an assertion on timing: a record of how many kills landed between commit and acknowledgement.
    console.log(
      `crash-safety: ${rows.length} rows in ${batches.size} batches; ${killedMidCommit} kills landed after a commit but before its acknowledgement`,
    );
  });
});
