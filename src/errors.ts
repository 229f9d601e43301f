/**
 * Typed errors and the exit codes of the README ("Exit codes"). Everything under src/ throws a WaError (or lets an
 * unexpected error escape); only src/cli/main.ts turns them into output and an exit code.
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  notPaired: 3,
  unavailable: 4,
  storage: 5,
  busy: 6,
  /** WhatsApp refused a message (its ack carried an error code). */
  rejected: 7,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface WaErrorOptions {
  /** A command the user can run next, printed as `Try: <hint>`. */
  hint?: string | undefined;
  cause?: unknown;
}

export class WaError extends Error {
  override readonly name = 'WaError';
  /** Stable machine-readable code, e.g. `E_SESSION_UNKNOWN`; part of the `--json` error contract. */
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(exitCode: ExitCode, code: string, message: string, options: WaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = exitCode;
    this.code = code;
    this.hint = options.hint;
  }
}

export const usageError = (code: string, message: string, options?: WaErrorOptions): WaError =>
  new WaError(ExitCode.usage, code, message, options);

export const storageError = (code: string, message: string, options?: WaErrorOptions): WaError =>
  new WaError(ExitCode.storage, code, message, options);

export const isWaError = (error: unknown): error is WaError => error instanceof WaError;
