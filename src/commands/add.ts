import type { Context } from './context.js';
import { sessionView } from '../session/session-view.js';

export async function add(ctx: Context, id: string, options: { label?: string | undefined }): Promise<void> {
  const store = await ctx.openStore('write');
  try {
    const session = await store.createSession(id, options.label ?? null);
    if (ctx.out.json) ctx.out.data(sessionView(session));
    else ctx.out.result(`Added session '${id}'. Next: wa connect ${id}`);
  } finally {
    await store.close();
  }
}
