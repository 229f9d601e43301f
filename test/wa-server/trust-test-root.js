// @ts-check
/**
 * Preload for a spawned `wa` (or any Baileys) process:
 *
 *   NODE_OPTIONS="--import /abs/path/test/wa-server/trust-test-root.js" \
 *   WA_TEST_ROOT_PUBLIC_KEY=<base64 of the 32-byte test root key> wa ...
 *
 * If WA_TEST_ROOT_PUBLIC_KEY is set, the key is written into `WA_CERT_DETAILS.PUBLIC_KEY` of the
 * Baileys module instance the process will use, so the Noise certificate chain of the loopback
 * test server validates (Baileys' noise-handler reads `WA_CERT_DETAILS.PUBLIC_KEY` at handshake
 * time, from the same module record). If the variable is unset, this file does nothing and does
 * not even load Baileys.
 *
 * Which Baileys: by default the one resolved from the project root (the directory two levels
 * above this file), i.e. the same file URL that `import '@whiskeysockets/baileys'` in the project
 * resolves to, hence the same ESM module instance. Override with WA_TEST_BAILEYS_FROM=<a directory
 * or file to resolve '@whiskeysockets/baileys' from> when the app under test lives elsewhere.
 *
 * The key is stored as a Buffer, like the original value (`Buffer.from(hex)` in lib/Defaults).
 */
import { createRequire } from 'node:module';
import { pathToFileURL, fileURLToPath } from 'node:url';
import path from 'node:path';

const b64 = process.env.WA_TEST_ROOT_PUBLIC_KEY;
if (b64) {
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 32) {
    throw new Error(`WA_TEST_ROOT_PUBLIC_KEY must be the base64 of 32 bytes (got ${key.length})`);
  }
  const from = process.env.WA_TEST_BAILEYS_FROM;
  const anchor = from
    ? path.resolve(from, from.endsWith('.js') || from.endsWith('.json') ? '' : 'package.json')
    : fileURLToPath(new URL('../../package.json', import.meta.url));
  const entry = createRequire(anchor).resolve('@whiskeysockets/baileys');
  const baileys = await import(pathToFileURL(entry).href);
  baileys.WA_CERT_DETAILS.PUBLIC_KEY = key;
}
