import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * Text from elsewhere (a contact's push name, a server's reason) made safe for a terminal: C0 and C1 control
 * characters and DEL are shown escaped (`\x1b`, `\u009b`), so no escape sequence reaches the terminal.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    const code = c.charCodeAt(0);
    return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * Human-readable log lines for a terminal (`12:00:01 INFO  connection open session=bot jid=…`) from pino's
 * JSON lines, control characters escaped; a line that is not JSON is passed on escaped too.
 */
export function prettyLines(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          out.write(`${printable(line)}\n`);
          continue;
        }
        const time = new Date(typeof entry.time === 'number' ? entry.time : Date.now()).toISOString().slice(11, 19);
        const fields = Object.entries(entry)
          .filter(([k]) => !OMIT.has(k))
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        const msg = typeof entry.msg === 'string' ? entry.msg : '';
        out.write(
          `${time} ${(LEVELS[entry.level as number] ?? 'LOG').padEnd(5)} ${printable(msg)}${fields ? ` ${printable(fields)}` : ''}\n`,
        );
      }
      done();
    },
  });
}
