import { Writable } from 'node:stream';

/** A writable that keeps what was written (`.text`), standing in for stdout or stderr in in-process tests. */
export function captureStream(isTTY = false): Writable & { text: string; isTTY: boolean } {
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        stream.text += chunk.toString('utf8');
        done();
      },
    }),
    { text: '', isTTY },
  );
  return stream;
}
