import { expect } from 'vitest';
import type { TestServer } from '../wa-server/server.js';
import type { WaProcess } from './wa-process.js';

/**
 * No device ever had two logins open at once, by the server's connection log (WhatsApp would answer the
 * second with 440 'replaced'), and no daemon saw a 440.
 */
export function expectNoOverlappingLogins(server: TestServer, daemons: readonly WaProcess[]): void {
  const spans = new Map<string, Array<{ at: number; closedAt: number }>>();
  for (const e of server.connectionLog()) {
    if (e.outcome !== 'login' || !e.jid) continue;
    spans.set(e.jid, [...(spans.get(e.jid) ?? []), { at: e.at, closedAt: e.closedAt ?? Infinity }]);
  }
  for (const [jid, list] of spans) {
    list.sort((a, b) => a.at - b.at);
    for (let i = 1; i < list.length; i++) {
      expect(list[i]!.at, `two logins of ${jid} at once`).toBeGreaterThanOrEqual(list[i - 1]!.closedAt);
    }
  }
  for (const d of daemons) expect(d.lines.filter((l) => l.code === 440)).toEqual([]);
}
