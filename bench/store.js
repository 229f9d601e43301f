// bench:store — the auth-state workload Baileys puts on a key store, run against these implementations:
//
//   wa        our store through the real library path: useSqliteAuthState() from dist/index.js
//             (WAL + synchronous=FULL, one transaction per keys.set / saveCreds).
//   wa+seal   the same with encryption at rest: useSqliteAuthState(path, id, { secret }) (AES-256-GCM per value).
//   files     Baileys' own useMultiFileAuthState(folder): what users run today.
//   floor     raw better-sqlite3 on the same table, WAL, the same synchronous setting, prepared statements,
//             one transaction per commit, and the same serialization (BufferJSON replacer/reviver): the
//             least any correct SQLite store has to do. wa/floor is the overhead of our layers.
//   pg        our PostgreSQL store through usePostgresAuthState(url, id), a fresh schema per store.
//   pg+seal   the same with { secret }.
//   pg floor  raw `pg` on the same table: one client, one transaction per commit (BEGIN; one prepared
//             statement that deletes with = ANY and upserts from unnest(); COMMIT), one prepared
//             SELECT … = ANY per read, the same serialization. pg/pg-floor is the overhead of our layers.
//
// The PostgreSQL columns run against WA_BENCH_PG_URL when set, or else a throwaway loopback cluster
// (test/support/postgres-cluster.js, durable: fsync on, like a real server); with neither they are skipped.
// Prints figures and ratios; never asserts timings (the machine is noisy). `--quick` for a smaller run.
//
// Usage: npm run bench:store [-- --quick]     (or: npm run build && node bench/store.js --quick)
//        WA_BENCH_PG_URL=postgres://user:pass@host/db npm run bench:store   (an existing server; schemas
//        named wa_bench_<pid>_<n> are created in it and dropped again)

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  BufferJSON,
  Curve,
  initAuthCreds,
  makeCacheableSignalKeyStore,
  proto,
  useMultiFileAuthState,
} from '@whiskeysockets/baileys';
import { useSqliteAuthState, usePostgresAuthState, SqliteStore } from '../dist/index.js';
import { findPostgresBin, startPostgresCluster } from '../test/support/postgres-cluster.js';

const QUICK = process.argv.includes('--quick');
const SESSION_ID = 'bench';
const SYNCHRONOUS = 'FULL'; // what src/store/sqlite.ts sets; the floor uses the same (checked below)
const SECRET = 'bench-secret';

const CFG = QUICK
  ? { repsA: 5, repsB: 3, commitsB: 500, repsC: 3, readsC: 500, opensD: 20 }
  : { repsA: 15, repsB: 5, commitsB: 2000, repsC: 3, readsC: 2000, opensD: 30 };
// Fewer repetitions for the three PostgreSQL columns (each commit and read is a network round trip and
// every commit an fsync, so theirs are the slow runs): keeps the full run under ~10 min on 2 cores.
const PG_REPS = QUICK ? { a: 3, b: 2, c: 2 } : { a: 9, b: 3, c: 2 };
const PRE_KEYS = 812; // Baileys' INITIAL_PREKEY_COUNT
const SESSIONS_C = 1000;
const IDS_PER_READ = 50;

// ---------------------------------------------------------------------------------- temp dirs, teardown
const ROOT = mkdtempSync(join(tmpdir(), 'wa-bench-store-'));
let dirCounter = 0;
const freshDir = (name) => join(ROOT, `${name}-${++dirCounter}`);

/** The PostgreSQL target, settled by setupPostgres(): url and admin client, or why the columns are skipped. */
const PG = {
  url: undefined,
  source: undefined,
  cluster: undefined,
  admin: undefined,
  skipped: undefined,
  info: undefined,
  schemas: new Set(),
};

/** Synchronous part of the teardown (safe in an 'exit' handler): stops our cluster, removes temp dirs. */
function cleanupSync() {
  const cluster = PG.cluster;
  PG.cluster = undefined;
  if (cluster) {
    try {
      cluster.stop();
    } catch (error) {
      console.error(`bench: could not stop the PostgreSQL cluster: ${error.message}`);
    }
  }
  rmSync(ROOT, { recursive: true, force: true });
}

let tornDown;
/** Drops the schemas we made (on a server that is not ours), ends the admin client, then cleanupSync(). */
function teardown() {
  tornDown ??= (async () => {
    try {
      if (PG.admin && !PG.cluster && PG.schemas.size > 0) {
        const drops = Promise.all(
          [...PG.schemas].map((schema) => PG.admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)),
        );
        await Promise.race([drops, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
      }
      await PG.admin?.end();
    } catch (error) {
      console.error(`bench: PostgreSQL cleanup failed: ${error.message}`);
    } finally {
      cleanupSync();
    }
  })();
  return tornDown;
}

let interrupted = false;
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping; cleaning up PostgreSQL and temp dirs`);
    void teardown().finally(() => process.exit(130));
  });
}

// ------------------------------------------------------------------------------------------------- data
// Deterministic choices (ids, mixes), random key material (its content does not affect timing).
function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(42);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = (array) => array[Math.floor(rand() * array.length)];
const b64 = (n) => randomBytes(n).toString('base64');
const digits = (n) => Array.from({ length: n }, () => int(0, 9)).join('');

/** A pre-key as Baileys stores it: Curve.generateKeyPair() → { public, private }, 32-byte Buffers. */
const makePreKey = () => Curve.generateKeyPair();

/**
 * A session as Baileys stores it: libsignal's SessionRecord.serialize() (Baileys 7 lib/Signal/libsignal.js
 * storeSession). libsignal base64-encodes every key itself, so the stored object holds strings, not
 * Buffers; what makes it costly to revive is its many small objects, including `messageKeys` maps with
 * numeric keys that BufferJSON.reviver inspects. 2–4 entries (the open one plus closed ones) → ~2–4 KB.
 */
function makeSession() {
  const _sessions = {};
  const entries = int(2, 4);
  for (let e = 0; e < entries; e++) {
    const baseKey = b64(33);
    const _chains = {};
    for (let c = int(1, 2); c > 0; c--) {
      const messageKeys = {};
      for (let k = int(0, 4), i = int(0, 50); k > 0; k--, i++) messageKeys[i] = b64(32);
      _chains[b64(33)] = { chainKey: { counter: int(-1, 200), key: b64(32) }, chainType: int(1, 2), messageKeys };
    }
    const entry = {
      registrationId: int(1, 16380),
      currentRatchet: {
        ephemeralKeyPair: { pubKey: b64(33), privKey: b64(32) },
        lastRemoteEphemeralKey: b64(33),
        previousCounter: int(0, 100),
        rootKey: b64(32),
      },
      indexInfo: {
        baseKey,
        baseKeyType: int(1, 2),
        closed: e === 0 ? -1 : Date.now() - int(1, 1e9),
        used: Date.now(),
        created: Date.now() - int(1, 1e9),
        remoteIdentityKey: b64(33),
      },
      _chains,
    };
    if (e === 0 && rand() < 0.3)
      entry.pendingPreKey = { signedKeyId: int(1, 9), baseKey: b64(33), preKeyId: int(1, 812) };
    _sessions[baseKey] = entry;
  }
  return { _sessions, version: 'v1' };
}

/** A sender key as Baileys stores it: Buffer.from(JSON.stringify(SenderKeyRecord.serialize())). */
function makeSenderKey() {
  const states = [];
  for (let s = int(1, 2); s > 0; s--) {
    states.push({
      senderKeyId: int(0, 2 ** 31),
      senderChainKey: { iteration: int(0, 500), seed: randomBytes(32) },
      senderSigningKey: { public: randomBytes(33) },
      senderMessageKeys: Array.from({ length: int(0, 3) }, () => ({ iteration: int(0, 500), seed: randomBytes(32) })),
    });
  }
  return Buffer.from(JSON.stringify(states), 'utf-8');
}

const sessionIds = Array.from({ length: SESSIONS_C }, (_, i) =>
  i % 2 === 0
    ? `55${digits(11)}.${int(0, 3) === 0 ? int(1, 30) : 0}`
    : `${digits(15)}_1.${int(0, 3) === 0 ? int(1, 30) : 0}`,
);
const groupIds = Array.from({ length: 40 }, () => `120363${digits(12)}@g.us`);
const users = Array.from({ length: 500 }, () => `55${digits(11)}`);

function makeData() {
  const t0 = performance.now();
  const preKeys = {};
  for (let id = 1; id <= PRE_KEYS; id++) preKeys[id] = makePreKey();

  const creds = initAuthCreds();

  // (b) mixed commits: 1–10 keys each, one keys.set() per commit possibly spanning several types.
  const commits = [];
  for (let c = 0; c < CFG.commitsB; c++) {
    const data = {};
    const put = (type, id, value) => ((data[type] ??= {})[id] = value);
    for (let k = int(1, 10); k > 0; k--) {
      const r = rand();
      if (r < 0.45) put('session', pick(sessionIds), makeSession());
      else if (r < 0.6) put('sender-key', `${pick(groupIds)}::${pick(users)}::0`, makeSenderKey());
      else if (r < 0.75) put('pre-key', String(int(1, PRE_KEYS)), null);
      else if (r < 0.9) {
        const pn = pick(users);
        const lid = digits(15);
        put('lid-mapping', pn, lid);
        put('lid-mapping', `${lid}_reverse`, pn);
      } else
        put(
          'device-list',
          pick(users),
          Array.from({ length: int(1, 4) }, (_, i) => String(i === 0 ? 0 : int(1, 60))),
        );
    }
    commits.push(data);
  }

  // (c) ~1000 stored sessions, 2000 reads of 50 random ids each.
  const sessions = {};
  for (const id of sessionIds) sessions[id] = makeSession();
  const reads = Array.from({ length: CFG.readsC }, () => Array.from({ length: IDS_PER_READ }, () => pick(sessionIds)));

  const sessionBytes = Object.values(sessions).map((s) => JSON.stringify(s, BufferJSON.replacer).length);
  const commitKeys = commits.map((d) => Object.values(d).reduce((n, v) => n + Object.keys(v).length, 0));
  return {
    preKeys,
    creds,
    commits,
    sessions,
    reads,
    stats: {
      ms: performance.now() - t0,
      sessionJson: `${Math.min(...sessionBytes)}–${Math.max(...sessionBytes)} B (median ${median(sessionBytes)})`,
      keysPerCommit: (commitKeys.reduce((a, b) => a + b, 0) / commitKeys.length).toFixed(1),
    },
  };
}

// -------------------------------------------------------------------------------------- implementations
// Each implementation: create() → a location for a new, empty store; open(location) → a handle
// { state: { creds, keys: { get, set } }, saveCreds(), close() } — the shape Baileys consumes.

const fixFileName = (file) => file.replace(/\//g, '__').replace(/:/g, '-');

/** The floor: what any correct SQLite key store must do, and nothing more. */
function openFloor(path) {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${SYNCHRONOUS}`);
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS whatsapp_auth (
    session_id TEXT NOT NULL, data_key TEXT NOT NULL, data_value TEXT NOT NULL, updated_at TEXT,
    PRIMARY KEY (session_id, data_key))`);
  const upsert = db.prepare(
    `INSERT INTO whatsapp_auth (session_id, data_key, data_value, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value, updated_at = excluded.updated_at`,
  );
  const remove = db.prepare(`DELETE FROM whatsapp_auth WHERE session_id = ? AND data_key = ?`);
  const select = db.prepare(`SELECT data_value FROM whatsapp_auth WHERE session_id = ? AND data_key = ?`).pluck();
  const write = db.transaction((changes, at) => {
    for (const [key, value] of changes) {
      if (value === null) remove.run(SESSION_ID, key);
      else upsert.run(SESSION_ID, key, value, at);
    }
  });
  // Point lookups by primary key inside one read transaction (one snapshot, like a single query).
  const readMany = db.transaction((keys) => keys.map((key) => select.get(SESSION_ID, key)));

  const credsText = select.get(SESSION_ID, 'creds');
  const creds = credsText === undefined ? initAuthCreds() : JSON.parse(credsText, BufferJSON.reviver);
  return {
    state: {
      creds,
      keys: {
        async get(type, ids) {
          const texts = readMany(ids.map((id) => fixFileName(`${type}-${id}`)));
          const result = {};
          ids.forEach((id, i) => {
            let value = texts[i] === undefined ? null : JSON.parse(texts[i], BufferJSON.reviver);
            if (type === 'app-state-sync-key' && value) value = proto.Message.AppStateSyncKeyData.fromObject(value);
            result[id] = value;
          });
          return result;
        },
        async set(data) {
          const changes = [];
          for (const type in data) {
            for (const id in data[type]) {
              const value = data[type][id];
              changes.push([fixFileName(`${type}-${id}`), value ? JSON.stringify(value, BufferJSON.replacer) : null]);
            }
          }
          write(changes, new Date().toISOString());
        },
      },
    },
    async saveCreds() {
      write([['creds', JSON.stringify(creds, BufferJSON.replacer)]], new Date().toISOString());
    },
    async close() {
      db.close();
    },
    db,
  };
}

/** Serializes a keys.set() payload as every store must: the last change to a key wins, null deletes. */
function serializeChanges(data) {
  const final = new Map();
  for (const type in data) {
    for (const id in data[type]) {
      const value = data[type][id];
      final.set(fixFileName(`${type}-${id}`), value ? JSON.stringify(value, BufferJSON.replacer) : null);
    }
  }
  const upsertKeys = [];
  const upsertValues = [];
  const deleteKeys = [];
  for (const [key, value] of final) {
    if (value === null) deleteKeys.push(key);
    else {
      upsertKeys.push(key);
      upsertValues.push(value);
    }
  }
  return { upsertKeys, upsertValues, deleteKeys };
}

const PG_TABLE = `CREATE TABLE IF NOT EXISTS whatsapp_auth (
  session_id TEXT NOT NULL, data_key TEXT NOT NULL, data_value TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (session_id, data_key))`;
// Prepared once per connection (named), like the SQLite floor's statements. One statement per commit: the
// keys are distinct after the last-wins merge, so the DELETE and the upsert never touch the same row.
const PG_WRITE = {
  name: 'floor-write',
  text: `WITH gone AS (DELETE FROM whatsapp_auth WHERE session_id = $1 AND data_key = ANY($4::text[]))
    INSERT INTO whatsapp_auth (session_id, data_key, data_value, updated_at)
    SELECT $1, k, v, now() FROM unnest($2::text[], $3::text[]) AS t(k, v)
    ON CONFLICT (session_id, data_key) DO UPDATE SET data_value = excluded.data_value, updated_at = excluded.updated_at`,
};
const PG_READ = {
  name: 'floor-read',
  text: `SELECT data_key, data_value FROM whatsapp_auth WHERE session_id = $1 AND data_key = ANY($2::text[])`,
};

/** The PostgreSQL floor: what any correct key store on `pg` must do, and nothing more. */
async function openPgFloor(url) {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(PG_TABLE);
  } catch (error) {
    await client.end();
    throw error;
  }
  const write = async (keys, values, deleteKeys) => {
    await client.query('BEGIN');
    try {
      await client.query({ ...PG_WRITE, values: [SESSION_ID, keys, values, deleteKeys] });
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  };
  const readMany = async (keys) => {
    const found = new Map();
    for (const row of (await client.query({ ...PG_READ, values: [SESSION_ID, keys] })).rows)
      found.set(row.data_key, row.data_value);
    return found;
  };

  const credsText = (await readMany(['creds'])).get('creds');
  const creds = credsText === undefined ? initAuthCreds() : JSON.parse(credsText, BufferJSON.reviver);
  return {
    state: {
      creds,
      keys: {
        async get(type, ids) {
          const found = await readMany(ids.map((id) => fixFileName(`${type}-${id}`)));
          const result = {};
          for (const id of ids) {
            const text = found.get(fixFileName(`${type}-${id}`));
            let value = text === undefined ? null : JSON.parse(text, BufferJSON.reviver);
            if (type === 'app-state-sync-key' && value) value = proto.Message.AppStateSyncKeyData.fromObject(value);
            result[id] = value;
          }
          return result;
        },
        async set(data) {
          const { upsertKeys, upsertValues, deleteKeys } = serializeChanges(data);
          if (upsertKeys.length + deleteKeys.length > 0) await write(upsertKeys, upsertValues, deleteKeys);
        },
      },
    },
    async saveCreds() {
      await write(['creds'], [JSON.stringify(creds, BufferJSON.replacer)], []);
    },
    async close() {
      await client.end();
    },
  };
}

const redact = (url) => {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
};

/**
 * Settles the PostgreSQL target: WA_BENCH_PG_URL, else a throwaway durable cluster when the server binaries
 * are installed, else the columns are skipped (PG.skipped says why). A WA_BENCH_PG_URL that fails is an error.
 */
async function setupPostgres() {
  const external = process.env.WA_BENCH_PG_URL;
  if (external) {
    PG.url = external;
    PG.source = `WA_BENCH_PG_URL ${redact(external)}`;
  } else {
    const bin = findPostgresBin();
    if (!bin) {
      PG.skipped = 'no PostgreSQL server binaries (initdb, pg_ctl) found and WA_BENCH_PG_URL is not set';
      return;
    }
    try {
      PG.cluster = await startPostgresCluster({ bin, durable: true });
    } catch (error) {
      PG.skipped = `could not start a PostgreSQL cluster from ${bin}: ${String(error.message).split('\n')[0]}`;
      return;
    }
    PG.url = PG.cluster.url;
    PG.source = `throwaway loopback cluster (${bin}), ${redact(PG.url)}`;
  }
  PG.admin = new pg.Client({ connectionString: PG.url });
  PG.admin.on('error', () => undefined);
  try {
    await PG.admin.connect();
  } catch (error) {
    throw new Error(`cannot connect to PostgreSQL at ${redact(PG.url)}: ${error.message}`);
  }
  const show = async (name) => (await PG.admin.query(`SHOW ${name}`)).rows[0][name];
  PG.info = {};
  for (const name of ['server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method'])
    PG.info[name] = await show(name);
}

let schemaCounter = 0;
/** A fresh, empty schema as the store's default schema (search_path in the URL's options). */
async function freshSchema() {
  const schema = `wa_bench_${process.pid}_${++schemaCounter}`;
  await PG.admin.query(`CREATE SCHEMA ${schema}`);
  PG.schemas.add(schema);
  const url = new URL(PG.url);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return { url: url.toString(), schema };
}
async function dropSchema({ schema }) {
  await PG.admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  PG.schemas.delete(schema);
}

/** Filled by main(): the SQLite entries always, the PostgreSQL ones when a server is at hand. */
const IMPLEMENTATIONS = [];

function implementations() {
  const sqlite = [
    {
      name: 'wa',
      group: 'sqlite',
      create: () => join(freshDir('wa'), 'wa.db'),
      open: (path) => useSqliteAuthState(path, SESSION_ID),
    },
    {
      name: 'wa+seal',
      group: 'sqlite',
      create: () => join(freshDir('wa-seal'), 'wa.db'),
      open: (path) => useSqliteAuthState(path, SESSION_ID, { secret: SECRET }),
    },
    {
      name: 'files',
      group: 'sqlite',
      create: () => freshDir('files'),
      open: async (dir) => {
        const auth = await useMultiFileAuthState(dir);
        return { ...auth, close: async () => {} };
      },
    },
    {
      name: 'floor',
      group: 'sqlite',
      create: () => {
        const dir = freshDir('floor');
        mkdirSync(dir, { recursive: true });
        return join(dir, 'floor.db');
      },
      open: async (path) => openFloor(path),
    },
  ];
  if (!PG.url) return sqlite;
  const postgres = [
    { name: 'pg', open: (location) => usePostgresAuthState(location.url, SESSION_ID) },
    { name: 'pg+seal', open: (location) => usePostgresAuthState(location.url, SESSION_ID, { secret: SECRET }) },
    { name: 'pg floor', open: (location) => openPgFloor(location.url) },
  ].map((impl) => ({ ...impl, group: 'pg', create: freshSchema, destroy: dropSchema }));
  return [...sqlite, ...postgres];
}

// ------------------------------------------------------------------------------------------------ stats
function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const time = async (fn) => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};
/** Rotates the starting implementation each repetition so none always runs first (or last). */
const rotated = (array, r) => array.map((_, i) => array[(i + r) % array.length]);

// ------------------------------------------------------------------------------------------- workloads
const WORKLOADS = [
  {
    key: 'a',
    title: `(a) first-login commit: keys.set({'pre-key': 1..${PRE_KEYS}}) + saveCreds`,
    unit: 'ms per commit pair',
    reps: () => CFG.repsA,
    parts: {},
    detail(name) {
      const parts = this.parts[name];
      return `keys.set ${fmt(median(parts.map((p) => p[0])))} + saveCreds ${fmt(median(parts.map((p) => p[1])))}`;
    },
    // Fresh empty store each repetition; opening is not timed.
    async run(impl, data) {
      const location = await impl.create();
      const auth = await impl.open(location);
      try {
        const set = await time(() => auth.state.keys.set({ 'pre-key': data.preKeys }));
        Object.assign(auth.state.creds, { nextPreKeyId: PRE_KEYS + 1, firstUnuploadedPreKeyId: PRE_KEYS + 1 });
        const creds = await time(() => auth.saveCreds());
        if (!data.warmup) (this.parts[impl.name] ??= []).push([set, creds]);
        return set + creds;
      } finally {
        await auth.close();
        await impl.destroy?.(location);
      }
    },
  },
  {
    key: 'b',
    title: `(b) ${CFG.commitsB} mixed commits of 1–10 keys (session, sender-key, pre-key delete, lid-mapping, device-list)`,
    unit: 'ms total',
    reps: () => CFG.repsB,
    // Fresh store holding the first-login state (untimed), then every commit in sequence, as Baileys does.
    async run(impl, data) {
      const location = await impl.create();
      const auth = await impl.open(location);
      try {
        await auth.state.keys.set({ 'pre-key': data.preKeys });
        await auth.saveCreds();
        return await time(async () => {
          for (const commit of data.commits) await auth.state.keys.set(commit);
        });
      } finally {
        await auth.close();
        await impl.destroy?.(location);
      }
    },
  },
  {
    key: 'c',
    title: `(c) ${CFG.readsC} reads of ${IDS_PER_READ} random session ids from ${SESSIONS_C} stored sessions`,
    unit: 'ms total',
    reps: () => CFG.repsC,
    // One preloaded store per implementation, shared by the repetitions (reads change nothing).
    preloaded: new Map(),
    async store(impl, data) {
      if (!this.preloaded.has(impl.name)) {
        const location = await impl.create();
        const auth = await impl.open(location);
        await auth.saveCreds();
        const ids = Object.keys(data.sessions);
        for (let i = 0; i < ids.length; i += 100) {
          await auth.state.keys.set({
            session: Object.fromEntries(ids.slice(i, i + 100).map((id) => [id, data.sessions[id]])),
          });
        }
        this.preloaded.set(impl.name, { auth, location, impl });
      }
      return this.preloaded.get(impl.name).auth;
    },
    async run(impl, data, keys) {
      const store = keys ?? (await this.store(impl, data)).state.keys;
      let found = 0;
      const ms = await time(async () => {
        for (const ids of data.reads) {
          const got = await store.get('session', ids);
          for (const id of ids) if (got[id]) found++;
        }
      });
      if (found !== data.reads.length * IDS_PER_READ)
        throw new Error(`${impl.name}: read ${found} sessions, expected all`);
      return ms;
    },
    async close() {
      for (const { auth, location, impl } of this.preloaded.values()) {
        await auth.close();
        await impl.destroy?.(location);
      }
      this.preloaded.clear();
    },
  },
  {
    key: 'd',
    title: `(d) open an existing store and load creds (${CFG.opensD} opens per repetition)`,
    unit: 'ms per open (median of opens)',
    reps: () => 1,
    // A store holding the first-login state plus 1000 sessions; each open is timed alone, close is not.
    locations: new Map(),
    async run(impl, data) {
      if (!this.locations.has(impl.name)) {
        const location = await impl.create();
        const auth = await impl.open(location);
        await auth.state.keys.set({ 'pre-key': data.preKeys });
        await auth.state.keys.set({ session: data.sessions });
        Object.assign(auth.state.creds, { nextPreKeyId: PRE_KEYS + 1 });
        await auth.saveCreds();
        await auth.close();
        this.locations.set(impl.name, { location, impl });
      }
      const { location } = this.locations.get(impl.name);
      const times = [];
      for (let i = 0; i < CFG.opensD; i++) {
        let auth;
        times.push(
          await time(async () => {
            auth = await impl.open(location);
            if (auth.state.creds.nextPreKeyId !== PRE_KEYS + 1) throw new Error(`${impl.name}: creds not loaded`);
          }),
        );
        await auth.close();
      }
      return { value: median(times), p90: percentile(times, 90) };
    },
    async close() {
      for (const { location, impl } of this.locations.values()) await impl.destroy?.(location);
      this.locations.clear();
    },
  },
];

// ----------------------------------------------------------------------------------------- environment
function environment() {
  const probe = join(freshDir('probe'), 'probe.db');
  const store = new SqliteStore(probe);
  const sync = store.db.pragma('synchronous', { simple: true });
  const journal = store.db.pragma('journal_mode', { simple: true });
  const sqlite = store.db.prepare('SELECT sqlite_version()').pluck().get();
  store.db.close();
  const floor = openFloor(join(ROOT, 'probe-floor.db'));
  const floorSync = floor.db.pragma('synchronous', { simple: true });
  floor.db.close();
  const names = ['OFF', 'NORMAL', 'FULL', 'EXTRA'];
  const version = (pkg) =>
    JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url))).version;
  console.log(
    `node ${process.version} (${process.platform}/${process.arch}), ${cpus().length}× ${cpus()[0]?.model ?? '?'}`,
  );
  console.log(
    `sqlite ${sqlite} (better-sqlite3 ${version('better-sqlite3')}), baileys ${version('@whiskeysockets/baileys')}, temp dir ${ROOT}`,
  );
  console.log(
    `wa store: journal_mode=${journal}, synchronous=${names[sync] ?? sync}; floor: journal_mode=wal, synchronous=${names[floorSync] ?? floorSync}` +
      (sync !== floorSync ? '  (MISMATCH: ratios compare different durability)' : ''),
  );
  if (PG.info) {
    const i = PG.info;
    console.log(
      `postgresql ${i.server_version} (pg ${version('pg')}): fsync=${i.fsync}, synchronous_commit=${i.synchronous_commit}, ` +
        `full_page_writes=${i.full_page_writes}, wal_sync_method=${i.wal_sync_method}` +
        (i.fsync !== 'on' || i.synchronous_commit === 'off' ? '  (NOT durable: commits skip the disk flush)' : ''),
    );
    console.log(`postgresql target: ${PG.source}; a fresh schema per store`);
  } else {
    console.log(`postgresql: SKIPPED — ${PG.skipped}; the pg, pg+seal and pg floor columns are not run`);
  }
  const pgReps = Object.entries(PG_REPS);
  console.log(
    `mode: ${QUICK ? 'quick' : 'full'} (${JSON.stringify(CFG)})` +
      (PG.info && pgReps.length > 0
        ? `; PostgreSQL columns run fewer repetitions: ${pgReps.map(([k, n]) => `(${k}) ${n}`).join(', ')}`
        : ''),
  );
}

// ---------------------------------------------------------------------------------------------- output
const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
const pad = (s, n) => String(s).padStart(n);
const target = (r) => (r <= 1.3 ? 'target ≤1.30x met' : 'target ≤1.30x NOT met');

/** Repetitions of a workload for one implementation (the PostgreSQL ones may run fewer). */
const repsOf = (workload, impl) =>
  impl.group === 'pg' ? Math.min(workload.reps(), PG_REPS[workload.key] ?? Infinity) : workload.reps();

/** One summary table: a row per workload, the given columns (a number in ms, or a ratio string). */
function table(title, summary, columns) {
  console.log(title);
  const widths = columns.map(([name]) => Math.max(9, name.length + 2));
  console.log(`  ${'workload'.padEnd(10)}${columns.map(([name], i) => pad(name, widths[i])).join('')}`);
  for (const s of summary) {
    const cells = columns.map(([, cell], i) => {
      const value = cell(s);
      return pad(value === undefined ? '' : typeof value === 'number' ? fmt(value) : value, widths[i]);
    });
    console.log(`  ${`(${s.workload})`.padEnd(10)}${cells.join('')}`);
    if (s.cached !== undefined && columns[0][0] === 'wa')
      console.log(`  ${'(c)+cache'.padEnd(10)}${pad(fmt(s.cached), widths[0])}`);
  }
}

async function main() {
  await setupPostgres();
  IMPLEMENTATIONS.push(...implementations());
  const hasPg = IMPLEMENTATIONS.some((impl) => impl.group === 'pg');
  environment();
  const data = makeData();
  console.log(
    `data: ${PRE_KEYS} pre-keys, ${SESSIONS_C} sessions (JSON ${data.stats.sessionJson}), ` +
      `${CFG.commitsB} commits (${data.stats.keysPerCommit} keys avg), generated in ${fmt(data.stats.ms)} ms`,
  );
  console.log('');
  const t0 = performance.now();
  const summary = [];

  for (const workload of WORKLOADS) {
    const results = Object.fromEntries(IMPLEMENTATIONS.map((impl) => [impl.name, []]));
    // Warm-up (untimed, a slice of the work): first-call JIT and module costs out of the way.
    const warm = { ...data, warmup: true, commits: data.commits.slice(0, 100), reads: data.reads.slice(0, 100) };
    if (workload.key !== 'd') for (const impl of IMPLEMENTATIONS) await workload.run(impl, warm);
    for (let r = 0; r < workload.reps(); r++) {
      for (const impl of rotated(IMPLEMENTATIONS, r)) {
        if (r < repsOf(workload, impl)) results[impl.name].push(await workload.run(impl, data));
      }
    }
    const value = (name) => (workload.key === 'd' ? results[name][0].value : median(results[name]));
    const spread = (name) =>
      workload.key === 'd'
        ? `p90 ${fmt(results[name][0].p90)}`
        : `${fmt(Math.min(...results[name]))}–${fmt(Math.max(...results[name]))}`;
    const v = Object.fromEntries(IMPLEMENTATIONS.map((impl) => [impl.name, value(impl.name)]));
    console.log(workload.title);
    const n = (impl) => (workload.key === 'd' ? CFG.opensD : repsOf(workload, impl));
    const counts = [...new Set(IMPLEMENTATIONS.map(n))];
    console.log(
      `  ${workload.unit}, median of ${counts.length === 1 ? counts[0] : `${n(IMPLEMENTATIONS[0])} (pg columns: ${n(IMPLEMENTATIONS.at(-1))})`}:`,
    );
    for (const impl of IMPLEMENTATIONS) {
      const detail = workload.detail ? `; ${workload.detail(impl.name)}` : '';
      console.log(`    ${impl.name.padEnd(22)} ${pad(fmt(v[impl.name]), 9)} ms   (${spread(impl.name)}${detail})`);
    }
    let cached;
    if (workload.key === 'c') {
      // Baileys' makeCacheableSignalKeyStore (NodeCache, 5 min TTL) in front of our store, cold at the
      // start of each repetition: what an in-memory cache buys on reads.
      const keysFor = async () =>
        makeCacheableSignalKeyStore((await workload.store(IMPLEMENTATIONS[0], data)).state.keys);
      await workload.run(IMPLEMENTATIONS[0], warm, await keysFor());
      const times = [];
      for (let r = 0; r < workload.reps(); r++)
        times.push(await workload.run(IMPLEMENTATIONS[0], data, await keysFor()));
      cached = median(times);
      console.log(
        `    ${'wa + cacheable store'.padEnd(22)} ${pad(fmt(cached), 9)} ms   (${fmt(Math.min(...times))}–${fmt(Math.max(...times))}; cold cache each repetition)`,
      );
    }
    await workload.close?.();
    console.log(
      `  SQLite      wa/floor ${ratio(v.wa, v.floor)} (${target(v.wa / v.floor)})   files/floor ${ratio(v.files, v.floor)}` +
        `   files/wa ${ratio(v.files, v.wa)}   wa+seal/wa ${ratio(v['wa+seal'], v.wa)}` +
        (cached === undefined ? '' : `   wa/(wa+cache) ${ratio(v.wa, cached)}`),
    );
    if (hasPg) {
      console.log(
        `  PostgreSQL  pg/pg-floor ${ratio(v.pg, v['pg floor'])} (${target(v.pg / v['pg floor'])})` +
          `   pg+seal/pg ${ratio(v['pg+seal'], v.pg)}   pg/wa ${ratio(v.pg, v.wa)}   pg-floor/floor ${ratio(v['pg floor'], v.floor)}`,
      );
    } else {
      console.log(`  PostgreSQL  skipped (${PG.skipped})`);
    }
    if (workload.key === 'd')
      console.log('  (the +seal opens include the scrypt key derivation, paid once per process and store)');
    console.log('');
    summary.push({ workload: workload.key, ...v, cached });
  }

  table('summary, SQLite (ms; lower is better)', summary, [
    ['wa', (s) => s.wa],
    ['wa+seal', (s) => s['wa+seal']],
    ['files', (s) => s.files],
    ['floor', (s) => s.floor],
    ['wa/floor', (s) => ratio(s.wa, s.floor)],
    ['files/floor', (s) => ratio(s.files, s.floor)],
    ['files/wa', (s) => ratio(s.files, s.wa)],
    ['wa+seal/wa', (s) => ratio(s['wa+seal'], s.wa)],
  ]);
  console.log('');
  if (hasPg) {
    table('summary, PostgreSQL (ms; lower is better)', summary, [
      ['pg', (s) => s.pg],
      ['pg+seal', (s) => s['pg+seal']],
      ['pg floor', (s) => s['pg floor']],
      ['pg/pg-floor', (s) => ratio(s.pg, s['pg floor'])],
      ['pg+seal/pg', (s) => ratio(s['pg+seal'], s.pg)],
      ['pg/wa', (s) => ratio(s.pg, s.wa)],
    ]);
  } else {
    console.log(`summary, PostgreSQL: skipped (${PG.skipped})`);
  }
  console.log(`\ntotal ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

try {
  await main();
} catch (error) {
  if (!interrupted) throw error;
} finally {
  await teardown();
}
