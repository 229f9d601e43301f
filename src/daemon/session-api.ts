/**
 * What `wa serve`'s session and pairing routes do (README "Pairing in a browser", HTTP): create and remove
 * sessions under the same rules as `wa add` and `wa rm`, and pair them in this daemon (src/daemon/pairing.ts),
 * which keeps them from then on.
 */
import { ExitCode, WaError } from '../errors.js';
import { removeSession } from '../session/registry.js';
import { sessionView } from '../session/session-view.js';
import type { SessionStore } from '../store/types.js';
import type { SessionApi } from './http.js';
import type { Pairings } from './pairing.js';
import type { Supervisor } from './supervisor.js';

export function sessionApi(deps: {
  store: SessionStore;
  pairing: Pairings;
  supervisor: Pick<Supervisor, 'serves'>;
  /** `wa serve <id…>`: the sessions this daemon serves (empty: all). */
  only: readonly string[];
}): SessionApi {
  const { store, pairing, supervisor } = deps;
  return {
    create: async (id, label) => sessionView(await store.createSession(id, label)),
    remove: async (id, force) => {
      if (pairing.isPairing(id)) {
        throw new WaError(ExitCode.busy, 'E_PAIRING_ACTIVE', `session '${id}' is being paired`, {
          hint: `DELETE /sessions/${id}/pair first`,
        });
      }
      // As `wa rm`: never one a live process holds (this daemon included), a paired one only forced.
      await removeSession(store, id, force, {
        detail: 'removing it leaves the device listed on the phone (?force=1 removes it anyway)',
      });
      return { id, removed: true };
    },
    pair: async (id, method) => {
      if (!supervisor.serves(id)) {
        throw new WaError(ExitCode.busy, 'E_NOT_SERVED', `this daemon serves only ${deps.only.join(', ')}`);
      }
      return { ...(await pairing.start(id, method)), state: 'pairing' };
    },
    cancelPair: async (id) => {
      await pairing.cancel(id);
      return { id, cancelled: true };
    },
    follow: (id, onEvent, onEnd) => pairing.subscribe(id, onEvent, onEnd),
    qrSvg: async (id) => {
      const qr = pairing.currentQr(id);
      if (qr === undefined) return undefined;
      const { default: qrcode } = await import('qrcode');
      // Dark on light with the 4-module quiet zone scanners expect (ISO/IEC 18004).
      return qrcode.toString(qr, { type: 'svg', margin: 4, color: { dark: '#000000', light: '#ffffff' } });
    },
  };
}
