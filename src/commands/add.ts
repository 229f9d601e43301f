import type { Context } from '../cli/context.js';
import { assertSessionId } from '../session-id.js';
import { sessionView } from './common.js';

export async function add(ctx: Context, id: string, options: { label?: string | undefined }): Promise<void> {
  assertSessionId(id);
  const store = await ctx.openStore('write');
  try {
    const session = await store.createSession(id, options.label ?? null);
    if (ctx.out.json) ctx.out.data(sessionView(session));
    else ctx.out.result(`Added session '${id}'. Next: wa connect ${id}`);
  } finally {
    await store.close();
  }
}
