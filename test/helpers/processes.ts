/**
 * Races child processes against one database: each runs an ES module script that imports wa from dist/
 * (`npm run build` first), says "ready", and waits for a go-file before doing its work, so every child
 * starts the racy part at the same instant.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The URL of a module under dist/, for `import` in a child's script. */
export const distUrl = (path: string): string => pathToFileURL(join(ROOT, 'dist', path)).href;

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The lines a script starts with: announce readiness, then spin until the go-file exists. */
export const BARRIER = `
import { existsSync } from 'node:fs';
process.stdout.write('ready\\n');
while (!existsSync(process.env.GO_FILE)) await new Promise((resolve) => setTimeout(resolve, 1));
`;

export async function race(
  count: number,
  script: (index: number) => string,
  dir: string,
  env: Record<string, string> = {},
): Promise<ChildResult[]> {
  const go = join(dir, `go-${Date.now()}-${Math.random()}`);
  const children = Array.from({ length: count }, (_, i) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', BARRIER + script(i)], {
      cwd: ROOT,
      env: { ...process.env, ...env, GO_FILE: go },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const result: ChildResult = { code: null, stdout: '', stderr: '' };
    const ready = new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        result.stdout += d;
        if (result.stdout.includes('ready\n')) resolve();
      });
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (result.stderr += d));
    const done = new Promise<ChildResult>((resolve) => {
      child.on('close', (code) => {
        result.code = code;
        resolve(result);
      });
    });
    return { ready: Promise.race([ready, done.then(() => undefined)]), done };
  });
  await Promise.all(children.map((c) => c.ready));
  writeFileSync(go, '');
  return Promise.all(children.map((c) => c.done));
}
