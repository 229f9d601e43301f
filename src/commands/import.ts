import { readAuthFolder } from '../auth/auth-folder.js';
import type { Context } from './context.js';
import { usageError } from '../errors.js';
import { assertNotBusy } from '../session/registry.js';

/**
 * `wa import <id> <dir>`: copies a useMultiFileAuthState folder into the database in one transaction
 * (creating the session if needed). Everything is validated before anything is written.
 */
export async function importFolder(
  ctx: Context,
  id: string,
  dir: string,
  options: { force?: boolean | undefined },
): Promise<void> {
  const folder = await readAuthFolder(dir);
  const store = await ctx.openStore('write');
  try {
    const session = await store.getSession(id);
    if (session) {
      assertNotBusy(session);
      if (!options.force && (await store.readCreds(id)) !== undefined) {
        throw usageError(
          'E_SESSION_HAS_CREDS',
          `session '${id}' already has credentials; importing would replace them`,
          {
            hint: `wa import ${id} ${dir} --force (replaces every key of '${id}'), or import under a new id`,
          },
        );
      }
    }
    await store.replaceAll(id, folder.entries, folder.summary);
    const imported = await store.getSession(id);
    for (const name of folder.skipped) ctx.out.warn(`skipped ${name} (not a .json file)`);
    if (ctx.out.json) {
      ctx.out.data({
        id,
        state: imported?.state,
        jid: imported?.jid ?? null,
        counts: folder.counts,
        skipped: folder.skipped,
      });
    } else {
      const counts = Object.entries(folder.counts)
        .map(([type, n]) => `${n} ${type}`)
        .join(', ');
      ctx.out.result(`Imported '${id}' (${imported?.state ?? 'unpaired'}): ${counts}.`);
    }
  } finally {
    await store.close();
  }
}
