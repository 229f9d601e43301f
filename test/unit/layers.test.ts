import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/**
 * The layers of src/, top to bottom (README "How the code is laid out"). A module may import its own
 * layer and the ones below it, never one above: the edge knows the commands, the commands know the
 * daemon, and the store knows nothing of sessions.
 */
const LAYERS: Array<[layer: string, matches: (path: string) => boolean]> = [
  ['edge', (p) => p.startsWith('cli/') || p.startsWith('library/') || p === 'index.ts'],
  ['commands', (p) => p.startsWith('commands/')],
  ['terminal', (p) => p.startsWith('terminal/')],
  ['daemon', (p) => p.startsWith('daemon/')],
  ['session', (p) => p.startsWith('session/')],
  ['auth', (p) => p.startsWith('auth/')],
  ['store', (p) => p.startsWith('store/')],
  ['base', (p) => !p.includes('/')],
];
const rank = (path: string): number => {
  const index = LAYERS.findIndex(([, matches]) => matches(path));
  if (index < 0) throw new Error(`${path} is in no layer`);
  return index;
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** Every relative import and dynamic import() of a file, as paths relative to src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.[^']+)'/g)].map((m) => m[1]!);
  return specifiers.map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts'));
}

describe('layers', () => {
  it('every module of src/ belongs to a layer, and no import runs back up', () => {
    const upward: string[] = [];
    for (const file of sources(SRC)) {
      const from = relative(SRC, file);
      for (const to of importsOf(file)) {
        if (rank(to) < rank(from)) upward.push(`${from} → ${to} (${LAYERS[rank(from)]![0]} → ${LAYERS[rank(to)]![0]})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('finds upward imports when there are some (the check itself works)', () => {
    expect(rank('store/open.ts')).toBeGreaterThan(rank('session/connection.ts'));
    expect(importsOf(join(SRC, 'commands/connect.ts'))).toContain('session/pairing-flow.ts');
  });
});
