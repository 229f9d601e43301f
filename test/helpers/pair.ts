/**
 * Pairs sessions in this process, through the library and the real Baileys client, against the test
 * server: much faster than spawning `wa connect` once per session when a test needs several paired
 * sessions. The phone "scans" each QR as soon as Baileys shows it.
 */
import * as baileys from '@whiskeysockets/baileys';
import pino from 'pino';
import { useStoreAuthState } from '../../src/index.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { SessionStore } from '../../src/store/types.js';
import { pairDevice } from '../support/pair-device.js';
import type { TestServer } from '../wa-server/server.js';

const silent = pino({ level: 'silent' });

export interface PairOptions {
  /** Stop right after pairing, before the first login (its 812 pre-keys are then uploaded by whoever logs in next). */
  skipFirstLogin?: boolean;
}

/** Opens the store behind a `--db` value: a SQLite path or a postgres:// URL. */
export const openTestStore = async (db: string): Promise<SessionStore> =>
  /^postgres(ql)?:/.test(db) ? PostgresStore.open(db) : new SqliteStore(db);

export async function pairSession(
  server: TestServer,
  db: string,
  id: string,
  phone: string,
  options: PairOptions = {},
): Promise<string> {
  baileys.WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(server.rootPublicKey);
  const store = await openTestStore(db);
  const auth = await useStoreAuthState(store, id);
  try {
    const jid = await pairDevice({
      baileys,
      auth,
      url: server.url,
      logger: silent,
      scan: (qr) => server.scanQr(qr, { number: phone, name: id }),
      skipFirstLogin: options.skipFirstLogin,
    });
    // Without a first login, the test server registers the device a moment after pair-success.
    if (options.skipFirstLogin) {
      await server.waitFor(() => server.devices().some((d) => d.phone === phone && !d.removed), 10_000);
    }
    return jid;
  } finally {
    await store.close();
  }
}

/** Pairs sessions `prefix0..prefixN-1` with phones 1555000xxxx, a few at a time. */
export async function pairSessions(
  server: TestServer,
  db: string,
  count: number,
  prefix = 'bot',
  options: PairOptions = {},
): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  for (let i = 0; i < ids.length; i += 5) {
    await Promise.all(
      ids
        .slice(i, i + 5)
        .map((id, j) => pairSession(server, db, id, `1555${String(1000000 + i + j).slice(1)}`, options)),
    );
  }
  return ids;
}
