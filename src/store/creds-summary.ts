import type { CredsSummary } from './types.js';

interface CredsShape {
  me?: { id?: unknown; name?: unknown } | null;
  account?: unknown;
}

/**
 * What the registry keeps about a creds value. "Paired" means `creds.account` is present: a pairing-code
 * request sets `creds.me` before the phone has accepted anything, so `me` alone proves nothing
 * (Baileys' lib/Socket/socket.js requestPairingCode).
 */
export function summaryOf(creds: CredsShape): CredsSummary {
  const paired = creds.account !== undefined && creds.account !== null;
  const me = paired ? creds.me : undefined;
  return {
    paired,
    jid: typeof me?.id === 'string' ? me.id : null,
    name: typeof me?.name === 'string' ? me.name : null,
  };
}

/** Summarizes stored creds text; undefined when it is not valid JSON. */
export function summarizeCreds(text: string): CredsSummary | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  return summaryOf(parsed);
}

/** `15551234567:12@s.whatsapp.net` → `15551234567`; null for anything that is not a phone-number jid (a LID, say). */
export function phoneOf(jid: string | null): string | null {
  const match = jid ? /^(\d+)(?::\d+)?@s\.whatsapp\.net$/.exec(jid) : null;
  return match?.[1] ?? null;
}
