import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../wa-server/server.js';
import { runWa } from '../helpers/run-wa.js';
import { tempDir } from '../helpers/temp.js';
import { WaProcess, waEnv } from '../helpers/wa-process.js';

const exec = promisify(execFile);

/**
 * Turns qrcode-terminal's small rendering back into pixels: each character is one module wide and two
 * high ('█' light/light, '▀' light/dark, '▄' dark/light, ' ' dark/dark). Returns a plain PBM image,
 * scaled up and with a wide light margin, as a camera would see the terminal.
 */
function terminalQrToPbm(block: string, scale = 4, margin = 8): string {
  const glyphs: Record<string, [boolean, boolean]> = {
    '█': [false, false],
    '▀': [false, true],
    '▄': [true, false],
    ' ': [true, true],
  };
  const rows: boolean[][] = [];
  for (const line of block.split('\n').filter((l) => l.length > 0)) {
    const top: boolean[] = [];
    const bottom: boolean[] = [];
    for (const ch of line) {
      const [t, b] = glyphs[ch] ?? [false, false];
      top.push(t);
      bottom.push(b);
    }
    rows.push(top, bottom);
  }
  const width = Math.max(...rows.map((r) => r.length)) + 2 * margin;
  const padded = [
    ...Array.from({ length: margin }, () => [] as boolean[]),
    ...rows.map((r) => [...Array<boolean>(margin).fill(false), ...r]),
    ...Array.from({ length: margin }, () => [] as boolean[]),
  ];
  const lines: string[] = [];
  for (const row of padded) {
    const pixels = Array.from({ length: width }, (_, x) => (row[x] ? '1' : '0').repeat(scale)).join('');
    for (let i = 0; i < scale; i++) lines.push(pixels);
  }
  return `P1\n${width * scale} ${padded.length * scale}\n${lines.join('\n')}\n`;
}

describe('the QR code wa connect prints', () => {
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

  it('decodes with a real QR decoder (zbarimg) to exactly the payload Baileys produced', async () => {
    const env = waEnv(server, join(dir.path, 'wa.db'));
    await runWa(['add', 'bot'], { env });
    const proc = new WaProcess(['connect', 'bot', '--json', '--timeout', '30'], env);
    const event = await proc.waitForEvent('qr');
    await proc.waitForStderr(/Expires at/);
    proc.kill('SIGINT');
    await proc.exited;

    const start = proc.stderr.indexOf('█');
    const end = proc.stderr.indexOf('\nScan with WhatsApp');
    const block = proc.stderr.slice(proc.stderr.lastIndexOf('\n', start) + 1, end);
    const image = join(dir.path, 'qr.pbm');
    await writeFile(image, terminalQrToPbm(block));
    const { stdout } = await exec('zbarimg', ['--raw', '-q', image]);
    expect(stdout.trim()).toBe(event.qr);
  });
});
