/**
 * Reading and writing Baileys' `useMultiFileAuthState` folders, byte for byte: each file `<key>.json`
 * becomes the stored value of data key `<key>`, and back.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { storageError, usageError } from '../errors.js';
import { CREDS_KEY, decodeValue, KEY_TYPES, keyTypeOf } from '../store/codec.js';
import { summaryOf } from '../store/creds-summary.js';
import type { CredsSummary } from '../store/types.js';

export interface AuthFolder {
  entries: Array<[dataKey: string, value: string]>;
  summary: CredsSummary;
  /** Number of files per key type, plus `creds: 1`. */
  counts: Record<string, number>;
  /** Entries that are not auth files and were left alone. */
  skipped: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const isKeyPair = (v: unknown): boolean => {
  const pair = v as { public?: unknown; private?: unknown } | null;
  return Buffer.isBuffer(pair?.public) && Buffer.isBuffer(pair?.private);
};

/** Creds must at least hold the identity a login needs; a truncated or foreign file must not pass. */
function checkCreds(value: unknown, file: string): CredsSummary {
  const creds = value as Record<string, unknown> | null;
  const signedPreKey = creds?.signedPreKey as { keyPair?: unknown; signature?: unknown } | undefined;
  const problems = [
    !isKeyPair(creds?.noiseKey) && 'noiseKey',
    !isKeyPair(creds?.signedIdentityKey) && 'signedIdentityKey',
    !(isKeyPair(signedPreKey?.keyPair) && Buffer.isBuffer(signedPreKey?.signature)) && 'signedPreKey',
    typeof creds?.registrationId !== 'number' && 'registrationId',
    typeof creds?.advSecretKey !== 'string' && 'advSecretKey',
  ].filter(Boolean);
  if (typeof creds !== 'object' || creds === null || problems.length > 0) {
    throw usageError(
      'E_IMPORT_CREDS',
      `${file} is not Baileys credentials (missing or invalid: ${problems.join(', ') || 'everything'})`,
    );
  }
  return summaryOf(creds);
}

export async function readAuthFolder(dir: string): Promise<AuthFolder> {
  const path = resolve(dir);
  let names: string[];
  try {
    const info = await stat(path);
    if (!info.isDirectory()) throw usageError('E_IMPORT_DIR', `${dir} is not a directory`);
    names = (await readdir(path)).sort();
  } catch (error) {
    if ((error as { code?: string }).code === 'E_IMPORT_DIR') throw error;
    throw usageError('E_IMPORT_DIR', `cannot read the folder ${dir}: ${(error as Error).message}`, { cause: error });
  }

  const entries: Array<[string, string]> = [];
  const counts: Record<string, number> = {};
  const skipped: string[] = [];
  let summary: CredsSummary | undefined;
  for (const name of names) {
    const file = join(path, name);
    if (!name.endsWith('.json') || !(await stat(file)).isFile()) {
      skipped.push(name);
      continue;
    }
    const dataKey = name.slice(0, -'.json'.length);
    const type = dataKey === CREDS_KEY ? CREDS_KEY : keyTypeOf(dataKey);
    if (!type) {
      throw usageError('E_IMPORT_FILE', `${name} is not a Baileys auth file (unknown key type)`, {
        hint: 'import a folder written by useMultiFileAuthState, or remove the file',
      });
    }
    let text: string;
    let value: unknown;
    try {
      text = utf8.decode(await readFile(file));
      value = decodeValue(text);
    } catch (error) {
      throw usageError(
        'E_IMPORT_FILE',
        `${name} is not valid JSON (truncated or corrupt?): ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    if (type === CREDS_KEY) summary = checkCreds(value, name);
    entries.push([dataKey, text]);
    counts[type] = (counts[type] ?? 0) + 1;
  }
  if (!summary) {
    throw usageError('E_IMPORT_CREDS', `${dir} has no creds.json`, {
      hint: 'point wa import at the folder you passed to useMultiFileAuthState',
    });
  }
  return { entries, summary, counts: ordered(counts), skipped };
}

/**
 * Whether a stored data key may become the file `<key>.json` of an exported folder: `creds`, or a known key
 * type followed by an id as `useMultiFileAuthState` names it (rc14's fixFileName has already turned `/`
 * into `__` and `:` into `-`, so neither can remain), and a plain file name that cannot leave the folder.
 * Keys in the database may come from foreign writers (the seed's table is adopted in place), so nothing
 * about them is trusted: `pre-key-1/../../x` would otherwise be written outside the target.
 */
export function isExportableKey(dataKey: string): boolean {
  if (dataKey === CREDS_KEY) return true;
  if (keyTypeOf(dataKey) === undefined) return false;
  // 250 + '.json' stays within the 255-byte file name limit of common filesystems.
  return (
    Buffer.byteLength(dataKey) <= 250 &&
    !dataKey.includes('..') &&
    // eslint-disable-next-line no-control-regex -- control characters (NUL included) are exactly what is refused
    !/[/\\:\u0000-\u001f\u007f]/.test(dataKey)
  );
}

/**
 * Writes the entries as a new `useMultiFileAuthState` folder (0700, files 0600). The target must not
 * exist or be empty. A new folder is written beside it and renamed into place, so a failure leaves nothing.
 * Every key is checked before anything is written: one key that is not a plain file name of a known key
 * type refuses the whole export (E_EXPORT_KEY, exit 5), and files are created exclusively (`wx`), so no
 * two keys and no existing file can end up as one file.
 */
export async function writeAuthFolder(dir: string, entries: ReadonlyArray<readonly [string, string]>): Promise<string> {
  const bad = entries.map(([key]) => key).filter((key) => !isExportableKey(key));
  if (bad.length > 0) {
    const shown = bad.slice(0, 3).map((key) => JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key));
    throw storageError(
      'E_EXPORT_KEY',
      `refusing to export: ${bad.length === 1 ? 'a stored key is' : `${bad.length} stored keys are`} not a plain file name of a Baileys key type (${shown.join(', ')}${bad.length > 3 ? ', ...' : ''}); nothing was written`,
      { hint: 'remove those rows from whatsapp_auth (they were not written by wa or Baileys)' },
    );
  }
  const path = resolve(dir);
  const existing = await readdir(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw usageError('E_EXPORT_DIR', `cannot use ${dir} as the export folder: ${error.message}`, { cause: error });
  });
  if (existing && existing.length > 0) {
    throw usageError('E_EXPORT_DIR', `${dir} is not empty; export writes a complete folder of its own`, {
      hint: 'choose a new or empty folder',
    });
  }
  // 32 files at a time: a first-login session has 800+ of them, and one-by-one waits on each.
  const write = async (target: string): Promise<void> => {
    for (let i = 0; i < entries.length; i += 32) {
      await Promise.all(
        entries
          .slice(i, i + 32)
          .map(([dataKey, value]) => writeFile(join(target, `${dataKey}.json`), value, { mode: 0o600, flag: 'wx' })),
      );
    }
  };
  try {
    if (existing) {
      await write(path);
      return path;
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const staging = await mkdtemp(join(dirname(path), `.${basename(path)}.partial-`));
    try {
      await write(staging);
      await rename(staging, path);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    return path;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('E_EXPORT')) throw error;
    throw usageError('E_EXPORT_DIR', `cannot write the export folder ${dir}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export function countByType(dataKeys: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const key of dataKeys) {
    const type = key === CREDS_KEY ? CREDS_KEY : (keyTypeOf(key) ?? 'other');
    counts[type] = (counts[type] ?? 0) + 1;
  }
  return ordered(counts);
}

/** Counts in a stable, meaningful order: creds, then Baileys' key types as it declares them. */
function ordered(counts: Record<string, number>): Record<string, number> {
  const order: string[] = [CREDS_KEY, ...KEY_TYPES, 'other'];
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)));
}
