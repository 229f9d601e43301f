// The one place that writes to the terminal: commands get an Output and never touch process streams.
import kleur from 'kleur';
import type { Writable } from 'node:stream';

export interface OutputStreams {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
}

/**
 * Everything a command shows goes through here. stdout carries results only (a table, or JSON in
 * `--json` mode); progress, warnings, QR codes and errors go to stderr.
 */
export interface Output {
  readonly json: boolean;
  readonly stderrIsTTY: boolean;
  /** A JSON document (one line) on stdout. */
  data(value: unknown): void;
  /** A human result line on stdout (never called in JSON mode by well-behaved commands). */
  result(text: string): void;
  info(text: string): void;
  success(text: string): void;
  warn(text: string): void;
  /** Raw text to stderr, for QR codes and redraws. */
  raw(text: string): void;
  readonly stderr: OutputStreams['stderr'];
  /** For serve's log lines, which are its output. */
  readonly stdout: OutputStreams['stdout'];
  readonly color: kleur.Kleur;
}

export function createOutput(
  streams: OutputStreams,
  json: boolean,
  env: Readonly<Record<string, string | undefined>>,
): Output {
  const stderrIsTTY = streams.stderr.isTTY === true;
  // kleur decides from stdout by default; colour what we actually write (stderr) and honour NO_COLOR.
  kleur.enabled = stderrIsTTY && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  const err = (text: string): void => void streams.stderr.write(`${text}\n`);
  return {
    json,
    stderrIsTTY,
    stderr: streams.stderr,
    stdout: streams.stdout,
    color: kleur,
    data: (value) => void streams.stdout.write(`${JSON.stringify(value)}\n`),
    result: (text) => void streams.stdout.write(`${text}\n`),
    info: err,
    success: (text) => err(kleur.green(text)),
    warn: (text) => err(kleur.yellow(`Warning: ${text}`)),
    raw: (text) => void streams.stderr.write(text),
  };
}

/** Formats rows as left-aligned columns separated by two spaces. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
