/**
 * What `wa connect` and `wa logout` show while they run: a spinner while connecting (TTY only), the QR code
 * redrawn in place with a countdown (a fresh block per code when stderr is not a terminal), the pairing
 * code, and `--json` events on stdout. Everything human goes to stderr.
 */
import { Writable } from 'node:stream';
import type { Ora } from 'ora';
import { phoneOf } from '../store/creds-summary.js';
import { prettyLines, printable } from './log-format.js';
import type { Output } from './output.js';

export interface ConnectView {
  connecting(text: string): void;
  qr(qr: string, expiresAt: Date): Promise<void>;
  code(code: string, phone: string): void;
  paired(jid: string, name: string | null): void;
  open(jid: string, name: string | null): void;
  error(code: string, message: string): void;
  /**
   * Where the command's logger writes: JSON lines in --json mode; otherwise readable lines, printed above
   * the spinner instead of into its line.
   */
  readonly logStream: NodeJS.WritableStream;
  /** Stops spinners and timers; call before the command returns. */
  done(): void;
}

const who = (jid: string, name: string | null): string => {
  const phone = phoneOf(jid);
  return `${phone ? `+${phone}` : printable(jid)}${name && name !== '~' ? ` (${printable(name)})` : ''}`;
};

export function createConnectView(out: Output): ConnectView {
  const tty = out.stderrIsTTY;
  let spinner: Ora | undefined;
  let spinnerText: string | undefined; // set while a spinner is wanted (ora loads asynchronously)
  let drawnLines = 0;
  let countdown: NodeJS.Timeout | undefined;

  const stopSpinner = (): void => {
    spinnerText = undefined;
    spinner?.stop();
    spinner = undefined;
  };
  const stopCountdown = (): void => {
    clearInterval(countdown);
    countdown = undefined;
  };
  const clearQr = (): void => {
    stopCountdown();
    if (tty && drawnLines > 0) out.raw(`\x1b[${drawnLines}A\x1b[0J`);
    drawnLines = 0;
  };

  const aboveSpinner = new Writable({
    write(chunk: Buffer, _encoding, done) {
      spinner?.clear();
      out.raw(chunk.toString('utf8'));
      spinner?.render();
      done();
    },
  });

  return {
    logStream: out.json ? out.stderr : prettyLines(aboveSpinner),
    connecting(text) {
      if (!tty) return void out.info(text);
      if (spinner) return void (spinner.text = text);
      const loading = spinnerText === undefined;
      spinnerText = text;
      if (loading) {
        void import('ora').then(({ default: ora }) => {
          if (spinnerText !== undefined && !spinner) spinner = ora({ text: spinnerText, stream: out.stderr }).start();
        });
      }
    },
    async qr(qr, expiresAt) {
      stopSpinner();
      if (out.json) out.data({ event: 'qr', qr, expiresAt: expiresAt.toISOString() });
      const { default: qrcode } = await import('qrcode-terminal');
      const block = await new Promise<string>((resolve) => qrcode.generate(qr, { small: true }, resolve));
      clearQr();
      const help = 'Scan with WhatsApp on your phone: Settings > Linked devices > Link a device.';
      const remaining = (): string =>
        `Expires in ${Math.max(0, Math.round((expiresAt.getTime() - Date.now()) / 1000))}s`;
      if (tty) {
        out.raw(`${block}\n${help}\n${remaining()}\n`);
        drawnLines = block.split('\n').length + 2;
        countdown = setInterval(() => out.raw(`\x1b[1A\x1b[2K${remaining()}\n`), 1000);
      } else {
        out.raw(`${block}\n${help}\nExpires at ${expiresAt.toISOString()}\n`);
      }
    },
    code(code, phone) {
      stopSpinner();
      if (out.json) out.data({ event: 'code', code });
      out.info(`Pairing code for +${phone}: ${out.color.bold(code)}`);
      out.info('On the phone: WhatsApp > Settings > Linked devices > Link a device > Link with phone number instead.');
    },
    paired(jid, name) {
      clearQr();
      stopSpinner();
      if (out.json) out.data({ event: 'paired', jid });
      out.success(`Paired with ${who(jid, name)}.`);
    },
    open(jid, name) {
      clearQr();
      stopSpinner();
      if (out.json) out.data({ event: 'open', jid });
      out.success(`Connected as ${who(jid, name)}.`);
    },
    error(code, message) {
      clearQr();
      stopSpinner();
      if (out.json) out.data({ event: 'error', code, message });
    },
    done() {
      stopCountdown();
      stopSpinner();
    },
  };
}
