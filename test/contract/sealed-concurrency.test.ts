/**
 * README "Encryption at rest": "concurrent first uses of a secret on a new database agree on one key". Replicas started
 * together on a new database each seal it; whichever stores its parameters first wins, and the others must
 * derive their key from those, or their values are sealed under a salt nobody can reproduce.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres.js';
import { SealedStore } from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { SessionStore } from '../../src/store/types.js';
import { freshSchema, pgUrl } from '../helpers/postgres.js';
import { tempDir } from '../helpers/temp.js';
import { distUrl, race } from '../helpers/processes.js';

const SECRET = 'shared replica secret';
const COST = { N: 2 ** 10, r: 8, p: 1 };
const WRITERS = 4;

/**
 * Each child connects, waits for all, settles encryption (unlock), then waits until every child has, so no
 * value exists while any of them initializes: the window in which an unconditional parameter write
 * overwrites another's salt.
 */
const child = (open: string) => (i: number) => `
  import { readdirSync, writeFileSync } from 'node:fs';
  const { SealedStore } = await import(${JSON.stringify(distUrl('store/sealed.js'))});
  const all = async (stage) => {
    writeFileSync(process.env.SYNC_DIR + '/' + stage + '-${i}', '');
    while (readdirSync(process.env.SYNC_DIR).filter((f) => f.startsWith(stage + '-')).length < ${WRITERS})
      await new Promise((resolve) => setTimeout(resolve, 1));
  };
  ${open}
  const store = new SealedStore(backend, { secret: process.env.SECRET, cost: ${JSON.stringify(COST)} });
  await all('opened'); // connected: initialization starts together
  await store.unlock();
  await all('unlocked');
  await store.writeValues('s${i}', [['pre-key-1', '"from ${i}"'], ['session-${i}', '"x${i}"']]);
  await store.writeCreds('s${i}', '{"n":${i}}', { paired: false, jid: null, name: null });
  await store.close();
`;

async function expectEveryValue(store: SessionStore): Promise<void> {
  for (let i = 0; i < WRITERS; i++) {
    expect(await store.readAll(`s${i}`)).toEqual([
      ['creds', `{"n":${i}}`],
      ['pre-key-1', `"from ${i}"`],
      [`session-${i}`, `"x${i}"`],
    ]);
  }
  await store.close();
}

describe('concurrent first sealing of a new database', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it(`SQLite: ${WRITERS} processes with one secret end with one key, and a fresh process reads every value`, async () => {
    const path = join(dir.path, 'wa.db');
    new SqliteStore(path).close(); // created and migrated, so the race is about sealing alone
    const results = await race(
      WRITERS,
      child(
        `const { SqliteStore } = await import(${JSON.stringify(distUrl('store/sqlite.js'))});
         const backend = new SqliteStore(${JSON.stringify(path)});`,
      ),
      dir.path,
      { SECRET, SYNC_DIR: dir.path },
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    await expectEveryValue(new SealedStore(new SqliteStore(path), { secret: SECRET }));
  });

  it.skipIf(!pgUrl)(
    `PostgreSQL: ${WRITERS} processes with one secret end with one key, and a fresh process reads every value`,
    async () => {
      const schema = await freshSchema();
      try {
        await (await PostgresStore.open(schema.url)).close();
        const results = await race(
          WRITERS,
          child(
            `const { PostgresStore } = await import(${JSON.stringify(distUrl('store/postgres.js'))});
             const backend = await PostgresStore.open(process.env.PG_URL);`,
          ),
          dir.path,
          { SECRET, SYNC_DIR: dir.path, PG_URL: schema.url },
        );
        for (const r of results) expect(r.code, r.stderr).toBe(0);
        await expectEveryValue(new SealedStore(await PostgresStore.open(schema.url), { secret: SECRET }));
      } finally {
        await schema.drop();
      }
    },
  );
});
