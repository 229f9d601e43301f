// Child process for the crash-safety test: commits key batches through the real store as fast as it can,
// printing each batch number once its commit has returned, until it is killed.
import { SqliteStore } from '../../dist/store/sqlite.js';

const [dbPath, run] = process.argv.slice(2);
const store = new SqliteStore(dbPath);
let seed = Number(run) * 7919 + 1;
const rand = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
const types = ['pre-key', 'session', 'sender-key', 'lid-mapping', 'device-list', 'app-state-sync-version'];

process.stdout.write('ready\n');
for (let batch = 0; ; batch++) {
  const size = 1 + Math.floor(rand() * 40);
  const changes = [];
  for (let i = 0; i < size; i++) {
    const type = types[i % types.length];
    // Large-ish values make a commit span several pages, so kills land mid-write.
    const value = JSON.stringify({ run: Number(run), batch, size, pad: 'x'.repeat(Math.floor(rand() * 3000)) });
    changes.push([`${type}-r${run}-b${batch}-${i}`, value]);
  }
  await store.writeValues('crash', changes);
  process.stdout.write(`${batch}\n`);
}
