import { ExitCode, WaError } from '../errors.js';

/** A fenced write (WriteOptions.fence) found the lease gone: taken over, expired, or released. */
export const leaseLostError = (sessionId: string, ownerId: string): WaError =>
  new WaError(
    ExitCode.busy,
    'E_LEASE_LOST',
    `session '${sessionId}': this process (owner ${ownerId}) no longer holds its lease, so the write was not applied`,
    { hint: `wa status ${sessionId}` },
  );
