// The one place that writes to the terminal: commands get an Output and never touch process streams.
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
  readonly color: Paint;
}

/** The few colours wa uses. */
export interface Paint {
  green(text: string): string;
  yellow(text: string): string;
  bold(text: string): string;
}

const plain: Paint = { green: (t) => t, yellow: (t) => t, bold: (t) => t };

/**
 * kleur when stderr (what wa colours) is a terminal and NO_COLOR / TERM=dumb do not say otherwise; plain
 * text otherwise, without even loading kleur, so scripts and pipes pay nothing for colour.
 */
export async function loadPaint(
  stderr: OutputStreams['stderr'],
  env: Readonly<Record<string, string | undefined>>,
): Promise<Paint> {
  if (stderr.isTTY !== true || env.NO_COLOR !== undefined || env.TERM === 'dumb') return plain;
  const { default: kleur } = await import('kleur');
  // kleur decides from stdout by default; colour what we actually write.
  kleur.enabled = true;
  return kleur;
}

export function createOutput(streams: OutputStreams, json: boolean, paint: Paint = plain): Output {
  const err = (text: string): void => void streams.stderr.write(`${text}\n`);
  return {
    json,
    stderrIsTTY: streams.stderr.isTTY === true,
    stderr: streams.stderr,
    stdout: streams.stdout,
    color: paint,
    data: (value) => void streams.stdout.write(`${JSON.stringify(value)}\n`),
    result: (text) => void streams.stdout.write(`${text}\n`),
    info: err,
    success: (text) => err(paint.green(text)),
    warn: (text) => err(paint.yellow(`Warning: ${text}`)),
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
