import type { Context } from './context.js';
import { removeSession } from '../session/registry.js';

/** `wa rm <id>`: deletes the session and all its data. A paired session needs --force (or a logout first). */
export async function rm(ctx: Context, id: string, options: { force?: boolean | undefined }): Promise<void> {
  const store = await ctx.openStore('write');
  try {
    await removeSession(store, id, options.force === true, {
      detail: 'removing it here leaves the device listed on the phone',
      hint: `wa logout ${id} (unlinks it), or wa rm ${id} --force`,
    });
    if (ctx.out.json) ctx.out.data({ id, removed: true });
    else ctx.out.result(`Removed session '${id}'.`);
  } finally {
    await store.close();
  }
}
