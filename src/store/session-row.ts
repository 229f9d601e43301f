import { CREDS_KEY } from './codec.js';
import type { SessionRecord, SessionState } from './types.js';

/** A wa_sessions row joined with its live lease, as both SQL backends select it. */
export interface SessionRow {
  id: string;
  label: string | null;
  state: SessionState;
  jid: string | null;
  name: string | null;
  created_at: string;
  paired_at: string | null;
  last_connected_at: string | null;
  last_disconnect_code: number | null;
  last_disconnect_reason: string | null;
  last_disconnect_at: string | null;
  connection: SessionRecord['connection'];
  owner_id: string | null;
  owner_host: string | null;
  owner_pid: number | null;
  /** Epoch ms (PostgreSQL returns BIGINT as a string). */
  lease_expires_at: number | string | null;
}

/** The record for a row; `credsValid` is false when the session's stored creds are not valid JSON. */
export function toSessionRecord(row: SessionRow, credsValid: boolean): SessionRecord {
  return {
    id: row.id,
    label: row.label,
    state: row.state,
    jid: row.jid,
    name: row.name,
    createdAt: row.created_at,
    pairedAt: row.paired_at,
    lastConnectedAt: row.last_connected_at,
    lastDisconnect:
      row.last_disconnect_at === null
        ? null
        : { code: row.last_disconnect_code, reason: row.last_disconnect_reason ?? '', at: row.last_disconnect_at },
    connection: row.connection,
    lease:
      row.owner_id === null
        ? null
        : {
            ownerId: row.owner_id,
            host: row.owner_host ?? '',
            pid: row.owner_pid ?? 0,
            expiresAt: Number(row.lease_expires_at ?? 0),
          },
    corruptKey: credsValid ? null : CREDS_KEY,
  };
}
