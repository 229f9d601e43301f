import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';
import { startTestServer, type TestServer } from '../wa-server/server.js';

// A pairing whose credentials cannot be stored must not end in "Connected" and exit 0: the phone would list
// a device whose identity the next start does not have.
describe('wa connect exits 0 only with the credentials stored', () => {
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

  it('a creds write that keeps failing (the database refuses it) is exit 5, not "Connected"', async () => {
    const db = join(dir.path, 'wa.db');
    const env = waEnv(server, db);
    expect((await runWa(['add', 'bot'], { env })).code).toBe(0);
    const sql = new Database(db);
    // Every creds write fails inside the database, as a full disk or a broken volume would make it.
    sql.exec(`
      CREATE TRIGGER no_creds_insert BEFORE INSERT ON whatsapp_auth WHEN NEW.data_key = 'creds'
        BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;
      CREATE TRIGGER no_creds_update BEFORE UPDATE ON whatsapp_auth WHEN NEW.data_key = 'creds'
        BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;`);
    sql.close();
    const proc = new WaProcess(['connect', 'bot', '--json', '--timeout', '60'], env);
    const qr = await proc.waitForEvent('qr');
    await server.scanQr(qr.qr as string, { number: '15550007777', name: 'Ada' });
    const { code } = await proc.exited;
    expect(code, proc.stderr).toBe(5);
    expect(proc.stderr).toMatch(/credentials could not be stored/);
    expect(proc.stderr).not.toMatch(/Connected as/);
    expect(proc.events.map((e) => e.event)).not.toContain('open');
  });
});
