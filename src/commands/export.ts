import { countByType, writeAuthFolder } from '../auth/auth-folder.js';
import type { Context } from './context.js';
import { ExitCode, WaError } from '../errors.js';
import { requireSession } from '../session/registry.js';

/** `wa export <id> <dir>`: writes the session as a useMultiFileAuthState folder that plain Baileys logs in with. */
export async function exportFolder(ctx: Context, id: string, dir: string): Promise<void> {
  const store = await ctx.openStore('write');
  try {
    await requireSession(store, id);
    const entries = await store.readAll(id);
    if (!entries.some(([key]) => key === 'creds')) {
      throw new WaError(ExitCode.notPaired, 'E_NO_CREDS', `session '${id}' has no credentials to export`, {
        hint: `wa connect ${id}`,
      });
    }
    const path = await writeAuthFolder(dir, entries);
    const counts = countByType(entries.map(([key]) => key));
    if (ctx.out.json) ctx.out.data({ id, dir: path, files: entries.length, counts });
    else ctx.out.result(`Exported '${id}' to ${path}: ${entries.length} files.`);
  } finally {
    await store.close();
  }
}
