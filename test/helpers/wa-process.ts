/**
 * Drives the real `wa` CLI (bin/wa.js, with the real Baileys client inside) against the loopback test
 * server: env points it at the server, and the trust preload swaps the server's test root into the very
 * Baileys instance the process loads. Nothing in src/ knows about any of this.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WA_BIN } from './run-wa.js';

const TRUST_PRELOAD = fileURLToPath(new URL('../wa-server/trust-test-root.js', import.meta.url));

export interface TestServerLike {
  url: string;
  rootPublicKeyBase64: string;
}

/** Environment for a `wa` process that talks to the test server and keeps its data in `db`. */
export function waEnv(server: TestServerLike, db: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    WA_DB: db,
    WA_WS_URL: server.url,
    NODE_OPTIONS: `--import ${TRUST_PRELOAD}`,
    WA_TEST_ROOT_PUBLIC_KEY: server.rootPublicKeyBase64,
    ...extra,
  };
}

export interface WaEvent {
  event: string;
  [key: string]: unknown;
}

export class WaProcess {
  readonly child: ChildProcess;
  readonly events: WaEvent[] = [];
  /** Every JSON line on stdout (serve's pino log lines, connect's events). */
  readonly lines: Array<Record<string, unknown>> = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  /** `script` and `cwd`: run another program than bin/wa.js (a bot built with the library, test/e2e/library.test.ts). */
  constructor(args: readonly string[], env: Record<string, string>, options: { script?: string; cwd?: string } = {}) {
    this.child = spawn(process.execPath, [options.script ?? WA_BIN, ...args], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        this.lines.push(parsed);
        if (typeof parsed.event === 'string') this.events.push(parsed as WaEvent);
      }
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => this.notify());
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Resolves with the first event of that name, failing if the process exits or the time runs out. */
  async waitForEvent(name: string, timeoutMs = 30_000): Promise<WaEvent> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const found = this.events.find((e) => e.event === name);
      if (found) return found;
      if (exited) throw new Error(`wa exited before '${name}'. stdout: ${this.stdout}\nstderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no '${name}' event within ${timeoutMs} ms. stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 250);
      });
    }
  }

  /** Resolves with the first stdout JSON line matching the predicate. */
  async waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs = 30_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(predicate);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`wa exited; stdout: ${this.stdout}\nstderr: ${this.stderr}`);
      if (Date.now() > deadline)
        throw new Error(`no matching line within ${timeoutMs} ms; stdout: ${this.stdout.slice(-3000)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 250);
      });
    }
  }

  async waitForStderr(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (Date.now() > deadline) throw new Error(`stderr never matched ${String(pattern)}: ${this.stderr}`);
      if (this.child.exitCode !== null) throw new Error(`wa exited; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 250);
      });
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}
