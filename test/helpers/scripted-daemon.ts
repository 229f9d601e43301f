import pino, { type Logger } from 'pino';
import { DEFAULT_TIMING, type Timing } from '../../src/config.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Supervisor, type SupervisorDeps } from '../../src/daemon/supervisor.js';
import type { SessionStore } from '../../src/store/types.js';
import type { ManualClock } from './manual-clock.js';
import type { scriptedFactory } from './scripted-socket.js';

/** Production timing, with connect pacing that never makes an in-process test wait. */
export const TEST_TIMING: Timing = { ...DEFAULT_TIMING, connectsPerSecond: 1000 };
export const TEST_OWNER = { ownerId: 'serve-test', host: 'test-host', pid: 1 };
export const silentLogger = pino({ level: 'silent' });

/** A supervisor over `store` that makes scripted sockets and lives on a manual clock. */
export function scriptedSupervisor(options: {
  store: SessionStore;
  factory: ReturnType<typeof scriptedFactory>;
  clock: ManualClock;
  /** wa's own log lines (silent unless a test reads them). */
  logger?: Logger;
  holderIsGone?: SupervisorDeps['holderIsGone'];
}): Supervisor {
  return new Supervisor({
    store: options.store,
    openSocket: options.factory.openSocket,
    logger: options.logger ?? silentLogger,
    baileysLogger: silentLogger,
    timing: TEST_TIMING,
    metrics: new Metrics(),
    clock: options.clock,
    owner: TEST_OWNER,
    only: [],
    holderIsGone: options.holderIsGone,
  });
}
