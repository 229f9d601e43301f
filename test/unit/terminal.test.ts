import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/session/baileys.js';
import { createConnectView } from '../../src/terminal/connect-view.js';
import { prettyLines, printable } from '../../src/terminal/log-format.js';
import { createOutput } from '../../src/terminal/output.js';
import { captureStream } from '../helpers/capture-stream.js';

const sink = captureStream;
const ESC = '\u001b';
const CSI = '\u009b';
/** Any raw control character but the newline that ends a line. */
const hasControl = (text: string): boolean =>
  [...text].some((c) => c !== '\n' && (c < ' ' || (c >= '\u007f' && c <= '\u009f')));

describe('control characters never reach a terminal', () => {
  it('printable escapes C0, DEL and C1 controls and leaves the rest', () => {
    expect(printable(`Ada${ESC}[2J${CSI}31m\u007f\u0007 ok ünï 😀`)).toBe('Ada\\x1b[2J\\u009b31m\\x7f\\x07 ok ünï 😀');
    expect(printable('a\nb\tc')).toBe('a\\nb\\tc');
  });

  it('readable log lines escape a push name carrying terminal escapes', () => {
    const out = sink();
    const stream = prettyLines(out);
    stream.write(`${JSON.stringify({ level: 30, time: 0, msg: `from ${ESC}]0;pwned\u0007`, name: `${CSI}2J` })}\n`);
    stream.write(`not json ${ESC}[31m\n`);
    expect(out.text).toBe('00:00:00 INFO  from \\x1b]0;pwned\\x07 name=\\u009b2J\nnot json \\x1b[31m\n');
    expect(hasControl(out.text)).toBe(false);
  });

  it('JSON log lines carry no raw control character (pino escapes C0, wa escapes DEL and C1)', async () => {
    const out = sink();
    const logger = await createLogger('info', out);
    logger.info({ name: `${ESC}[2J${CSI}H\u007f` }, `hi ${CSI}`);
    const line = out.text.trim();
    expect(hasControl(line)).toBe(false);
    expect(JSON.parse(line)).toMatchObject({ name: `${ESC}[2J${CSI}H\u007f`, msg: `hi ${CSI}` });
  });

  it('the connect view escapes a name the phone sent', () => {
    const stderr = sink();
    const view = createConnectView(createOutput({ stdout: sink(), stderr }, false));
    view.paired('15551234567:3@s.whatsapp.net', `Eve${ESC}[8m`);
    view.done();
    expect(stderr.text).toBe('Paired with +15551234567 (Eve\\x1b[8m).\n');
  });
});

describe('dependency log lines in a terminal', () => {
  it('are readable lines (not JSON) in human mode, JSON in --json mode, and benign warnings only at debug', async () => {
    const human = sink();
    const view = createConnectView(createOutput({ stdout: sink(), stderr: human }, false));
    const logger = await createLogger('warn', view.logStream);
    logger.warn('no name present, ignoring presence update request...');
    logger.warn({ jid: 'x@s.whatsapp.net' }, 'something worth knowing');
    view.done();
    expect(human.text).toMatch(/^\d\d:\d\d:\d\d WARN {2}something worth knowing jid=x@s\.whatsapp\.net\n$/);

    const json = sink();
    const jsonView = createConnectView(createOutput({ stdout: sink(), stderr: json }, true));
    pino({ base: undefined }, jsonView.logStream).warn('x');
    expect(JSON.parse(json.text)).toMatchObject({ level: 40, msg: 'x' });
  });
});
