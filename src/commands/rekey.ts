import type { Context } from './context.js';
import { ExitCode, usageError, WaError } from '../errors.js';
import { ENCRYPTION_META_KEY } from '../store/codec.js';
import {
  createSealer,
  isSealed,
  openSealer,
  parseEncryptionParams,
  secretRequiredError,
  type Sealer,
} from '../store/sealing.js';
import { describeOwner } from '../session/session-view.js';

export interface RekeyOptions {
  decrypt?: boolean | undefined;
}

/**
 * `wa rekey [--decrypt]`: re-seals every stored value of every session from the current key (`WA_SECRET`;
 * none for a database in clear) to a new one (`WA_NEW_SECRET`, with a fresh salt), or with --decrypt back
 * to clear text, in one transaction: a failure anywhere leaves the database exactly as it was. Refused
 * while any session has a live owner, which would go on writing with the old key.
 */
export async function rekey(ctx: Context, options: RekeyOptions): Promise<void> {
  const newSecret = ctx.config.newSecret;
  if (options.decrypt && newSecret !== undefined) {
    throw usageError('E_CONFIG', '--decrypt stores values in clear, but WA_NEW_SECRET is set', {
      hint: 'unset WA_NEW_SECRET, or drop --decrypt to re-seal with it',
    });
  }
  if (!options.decrypt && newSecret === undefined) {
    throw usageError('E_CONFIG', 'WA_NEW_SECRET is not set: wa rekey seals with the secret it names', {
      hint: 'WA_SECRET=<current> WA_NEW_SECRET=<new> wa rekey   (or wa rekey --decrypt to store values in clear)',
    });
  }
  const opened = await ctx.openStore('write');
  // The re-keying happens below the sealing layer: it reads with one key and writes with another.
  const store = opened.raw();
  try {
    const busy = (await store.listSessions()).filter((s) => s.lease !== null);
    if (busy.length > 0) {
      throw new WaError(
        ExitCode.busy,
        'E_BUSY',
        `cannot rekey while sessions are in use (they would go on writing with the old key): ${busy
          .map((s) => `'${s.id}' by ${describeOwner(s.lease!)}`)
          .join(', ')}`,
        { hint: 'stop wa serve and any wa connect or logout, then run wa rekey again' },
      );
    }
    const params = parseEncryptionParams(await store.getMeta(ENCRYPTION_META_KEY), store.location);
    if (!params && options.decrypt) {
      if (ctx.out.json) ctx.out.data({ from: null, to: null, sessions: 0, values: 0 });
      else ctx.out.result(`The database ${store.location} is not encrypted; nothing to do.`);
      return;
    }
    let from: Sealer | null = null;
    if (params) {
      if (ctx.config.secret === undefined) throw secretRequiredError(store.location);
      from = await openSealer(ctx.config.secret, params, store.location);
    }
    const to = newSecret === undefined ? null : await createSealer(newSecret);

    const sessions = new Set<string>();
    const values = await store.rewriteAll(
      (value, sessionId, dataKey) => {
        sessions.add(sessionId);
        // A database in clear never holds sealed text; if it does, its key is lost and sealing it again would hide that.
        if (!from && isSealed(value)) {
          throw new WaError(
            ExitCode.storage,
            'E_NOT_SEALED',
            `session '${sessionId}': stored value '${dataKey}' is sealed, but the database has no encryption parameters`,
          );
        }
        const plain = from ? from.unseal(value, sessionId, dataKey) : value;
        return to ? to.sealer.seal(plain, sessionId, dataKey) : plain;
      },
      { [ENCRYPTION_META_KEY]: to ? JSON.stringify(to.params) : null },
    );

    // The old values (clear text, or sealed with the old key) survive the rewrite in free pages, the WAL
    // or dead row versions until something overwrites them; compact() removes them.
    const compacted = await store.compact();
    if (!compacted) {
      ctx.out.warn(`could not compact ${store.location}: old values may remain in its free space until overwritten`);
    }
    const result = {
      from: from?.keyId ?? null,
      to: to?.sealer.keyId ?? null,
      sessions: sessions.size,
      values,
      compacted,
    };
    if (ctx.out.json) ctx.out.data(result);
    else {
      const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
      const counts = `${plural(values, 'value')} of ${plural(sessions.size, 'session')}`;
      ctx.out.result(
        !to
          ? `Decrypted ${counts}: the database ${store.location} now stores values in clear. Unset WA_SECRET.`
          : from
            ? `Re-sealed ${counts} with key ${to.sealer.keyId} (was ${from.keyId}). Use WA_NEW_SECRET as WA_SECRET from now on.`
            : `Sealed ${counts} with key ${to.sealer.keyId}. Set WA_SECRET to WA_NEW_SECRET's value from now on.`,
      );
    }
  } finally {
    await store.close();
  }
}
