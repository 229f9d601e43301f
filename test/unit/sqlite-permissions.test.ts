import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SealedStore } from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { tempDir } from '../helpers/temp.js';

describe('SqliteStore.permissionWarning', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(() => dir.remove());

  it('is silent for a database wa created (0600 in a 0700 directory) and for :memory:', async () => {
    const store = new SqliteStore(join(dir.path, 'data', 'wa.db'));
    await store.createSession('s', null); // the -wal file exists now too
    expect(store.permissionWarning()).toBeUndefined();
    expect(new SealedStore(store).permissionWarning()).toBeUndefined();
    await store.close();
    const memory = new SqliteStore(':memory:');
    expect(memory.permissionWarning()).toBeUndefined();
    await memory.close();
  });

  it('names a database file readable by group or others, with the chmod that fixes it', async () => {
    const data = join(dir.path, 'data');
    const path = join(data, 'wa.db');
    const store = new SqliteStore(path);
    await store.createSession('s', null);
    await chmod(path, 0o644);
    expect(store.permissionWarning()).toBe(
      `the database is readable by other users: ${path} (mode 0644); run chmod 600 ${path}`,
    );
    await chmod(path, 0o600);
    // A listable directory (a 0755 working directory, say) exposes nothing while the files are 0600.
    await chmod(data, 0o755);
    expect(store.permissionWarning()).toBeUndefined();
    await chmod(`${path}-wal`, 0o604);
    expect(store.permissionWarning()).toContain(`chmod 600 ${path}-wal`);
    expect(new SealedStore(store).permissionWarning()).toContain(`chmod 600 ${path}-wal`);
    await store.close();
  });
});
