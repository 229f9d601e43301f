import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const WA_BIN = fileURLToPath(new URL('../../bin/wa.js', import.meta.url));

export interface WaResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

/** Runs the real CLI (bin/wa.js over dist/) with stdin closed and a pinned, colourless environment. */
export function runWa(args: readonly string[], options: RunOptions = {}): Promise<WaResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NO_COLOR: '1',
      ...options.env,
    };
    const child = spawn(process.execPath, [WA_BIN, ...args], {
      cwd: options.cwd,
      env: env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
