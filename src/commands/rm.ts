import type { Context } from './context.js';
import { usageError } from '../errors.js';
import { assertNotBusy, requireSession } from './common.js';

/** `wa rm <id>`: deletes the session and all its data. A paired session needs --force (or a logout first). */
export async function rm(ctx: Context, id: string, options: { force?: boolean | undefined }): Promise<void> {
  const store = await ctx.openStore('write');
  try {
    const session = await requireSession(store, id);
    assertNotBusy(session);
    if (session.state !== 'unpaired' && !options.force) {
      throw usageError(
        'E_SESSION_PAIRED',
        `session '${id}' is ${session.state}: removing it here leaves the device listed on the phone`,
        { hint: `wa logout ${id} (unlinks it), or wa rm ${id} --force` },
      );
    }
    await store.deleteSession(id);
    if (ctx.out.json) ctx.out.data({ id, removed: true });
    else ctx.out.result(`Removed session '${id}'.`);
  } finally {
    await store.close();
  }
}
