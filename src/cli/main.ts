/**
 * The CLI edge: parses argv, builds the context, runs one command, and maps its result or error to
 * output and an exit code. The only module that reads process.argv/env or decides the exit code.
 * Commands are imported lazily so `wa status` never loads Baileys (or anything it does not use).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as CommanderModule from 'commander';
import { resolveConfig, type GlobalFlags } from '../config.js';
import type { Context, ProcessLog } from '../commands/context.js';
import { ExitCode, isWaError, usageError, type ExitCode as ExitCodeType } from '../errors.js';
import type { Logger } from '../session/baileys.js';
import { openStore } from '../store/open.js';
import { createOutput, loadPaint, type Output, type OutputStreams } from '../terminal/output.js';
import {
  cursorArg,
  httpAddressArg,
  phoneArg,
  positiveIntArg,
  secondsArg,
  sessionIdArg,
  sessionIdsArg,
} from './args.js';

export interface CliIo extends OutputStreams {
  argv: readonly string[];
  /** Text for `wa send` without a text argument (bin/wa.js: process.stdin). */
  stdin?: (() => NodeJS.ReadableStream) | undefined;
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted by the first SIGINT/SIGTERM (bin/wa.js); commands then stop gracefully. */
  signal: AbortSignal;
  host: string;
  pid: number;
  /**
   * Registers the process-wide unhandled-rejection listener (bin/wa.js: `process.on('unhandledRejection')`).
   * Baileys fires internal promises without awaiting them (keep-alive pings, init queries); when a socket
   * dies under them they reject with no handler, and Node's default would kill a daemon for it.
   */
  onUnhandledRejection?: ((listener: (reason: unknown) => void) => void) | undefined;
  /**
   * Registers the listener of everything written through `console` (bin/wa.js replaces its methods). wa
   * itself never uses console; dependencies do: libsignal prints whole session records with private keys
   * (node_modules/libsignal/src/session_record.js, "Opening session:", "Closing session:").
   */
  onConsole?: ((listener: (method: string, args: readonly unknown[]) => void) => void) | undefined;
}

/**
 * Counts every unhandled rejection and logs it at debug, and logs dependencies' console output at debug as
 * text: string arguments only, every other value reduced to its kind, so no key material is ever printed.
 */
function createProcessLog(io: CliIo): ProcessLog {
  let rejections = 0;
  let logger: Logger | undefined;
  io.onUnhandledRejection?.((reason) => {
    rejections++;
    logger?.debug({ err: reason }, 'unhandled rejection (usually a Baileys promise outliving its socket)');
  });
  io.onConsole?.((method, args) => {
    if (!logger?.isLevelEnabled('debug')) return;
    const text = args
      .map((a) => (typeof a === 'string' || typeof a === 'number' ? String(a) : `[${a === null ? 'null' : typeof a}]`))
      .join(' ');
    logger.debug({ console: method }, `dependency output: ${text}`);
  });
  return {
    get rejections() {
      return rejections;
    },
    logTo: (next) => void (logger = next),
  };
}

// require(), not import: Node 20 loads a CommonJS package through ESM's translator (scanning its source
// for named exports), ~5 ms slower per start than require(); `wa status` must start fast (bench:cli).
const { Command, CommanderError, Option } = createRequire(import.meta.url)('commander') as typeof CommanderModule;
type Command = CommanderModule.Command;

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export async function run(io: CliIo): Promise<ExitCodeType> {
  const paint = await loadPaint(io.stderr, io.env);
  let out: Output = createOutput(io, io.argv.includes('--json'), paint);
  let exitCode: ExitCodeType = ExitCode.ok;
  let debug = false;
  const program = new Command('wa');
  const usageOutput: string[] = [];
  const processLog = createProcessLog(io);

  program
    .description('Keep WhatsApp Web (Baileys) sessions connected, stored in SQLite or PostgreSQL.')
    .version(VERSION, '-V, --version')
    .option(
      '--db <path-or-url>',
      'database: a SQLite file or a postgres:// URL (env: WA_DB, DATABASE_URL; default ./data/wa.db)',
    )
    .option('--ws-url <url>', 'WhatsApp WebSocket endpoint (env: WA_WS_URL)')
    .addOption(new Option('--log-level <level>', 'log level (env: WA_LOG_LEVEL; default warn, info for serve)'))
    .option('--json', 'machine-readable output on stdout')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
      outputError: (text) => void usageOutput.push(text.replace(/^error: /, '').trim()),
    });

  const action =
    <A extends unknown[]>(load: () => Promise<(ctx: Context, ...args: A) => Promise<ExitCodeType | void>>) =>
    async (...args: unknown[]): Promise<void> => {
      const command = args[args.length - 1] as Command;
      const config = resolveConfig(command.optsWithGlobals<GlobalFlags>(), io.env);
      out = createOutput(io, config.json, paint);
      debug = config.logLevel === 'debug' || config.logLevel === 'trace';
      const ctx: Context = {
        config,
        out,
        signal: io.signal,
        host: io.host,
        pid: io.pid,
        processLog,
        readStdin: io.stdin ? () => readAll(io.stdin!()) : undefined,
        openStore: (async (mode: 'read' | 'write') => {
          const store = mode === 'read' ? await openStore(config, 'read') : await openStore(config, 'write');
          const exposed = store?.permissionWarning();
          if (exposed) out.warn(exposed);
          return store;
        }) as Context['openStore'],
      };
      const fn = await load();
      // commander passes (...positionals, options, command); commands take (ctx, ...positionals, options).
      exitCode = (await fn(ctx, ...(args.slice(0, -1) as A))) ?? ExitCode.ok;
    };

  program
    .command('add')
    .description('register a session (no network)')
    .argument('<id>', 'session id', sessionIdArg)
    .option('--label <text>', 'a note shown by wa status')
    .action(action(async () => (await import('../commands/add.js')).add));

  program
    .command('status')
    .description('show every session, or one (exit 0 when it is paired, 3 when not)')
    .argument('[id]', 'session id', sessionIdArg)
    .action(action(async () => (await import('../commands/status.js')).status));

  program
    .command('rm')
    .description('delete a session and all its data')
    .argument('<id>', 'session id', sessionIdArg)
    .option('--force', 'also remove a paired session (the phone keeps listing the device)')
    .action(action(async () => (await import('../commands/rm.js')).rm));

  program
    .command('import')
    .description('copy a useMultiFileAuthState folder into the database')
    .argument('<id>', 'session id (created if missing)', sessionIdArg)
    .argument('<dir>', 'the folder')
    .option('--force', 'replace the credentials and keys the session already has')
    .action(action(async () => (await import('../commands/import.js')).importFolder));

  program
    .command('export')
    .description('write a session out as a useMultiFileAuthState folder')
    .argument('<id>', 'session id', sessionIdArg)
    .argument('<dir>', 'a new or empty folder')
    .action(action(async () => (await import('../commands/export.js')).exportFolder));

  program
    .command('rekey')
    .description('re-seal every stored value: WA_SECRET (current) to WA_NEW_SECRET, or seal a clear database')
    .option('--decrypt', 'store every value in clear again (turns encryption off)')
    .action(action(async () => (await import('../commands/rekey.js')).rekey));

  program
    .command('connect')
    .description('pair the session (QR code or pairing code) or check that a paired one connects')
    .argument('<id>', 'session id', sessionIdArg)
    .option(
      '--phone <digits>',
      'pair with an 8-character code for this phone number (country code, digits only)',
      phoneArg,
    )
    .addOption(
      new Option('--timeout <seconds>', 'give up after this long')
        .argParser(secondsArg('--timeout'))
        .default(180_000, '180'),
    )
    .option('--takeover', 'take the session from a live owner (it closes without logging out)')
    .action(
      action(async () => {
        const { connect } = await import('../commands/connect.js');
        return (ctx: Context, id: string, o: { phone?: string; timeout: number; takeover?: boolean }) =>
          connect(ctx, id, { phone: o.phone, timeoutMs: o.timeout, takeover: o.takeover });
      }),
    );

  program
    .command('logout')
    .description('unlink the device on WhatsApp, then delete its credentials and keys')
    .argument('<id>', 'session id', sessionIdArg)
    .option('--force', 'clear locally even when WhatsApp cannot be reached (the phone may keep listing the device)')
    .addOption(
      new Option('--timeout <seconds>', 'give up reaching WhatsApp after this long')
        .argParser(secondsArg('--timeout'))
        .default(30_000, '30'),
    )
    .option('--takeover', 'take the session from a live owner first')
    .action(
      action(async () => {
        const { logout } = await import('../commands/logout.js');
        return (ctx: Context, id: string, o: { force?: boolean; timeout: number; takeover?: boolean }) =>
          logout(ctx, id, { force: o.force, timeoutMs: o.timeout, takeover: o.takeover });
      }),
    );

  program
    .command('doctor')
    .description('check the setup (Node, database, filesystem, secret, sessions, HTTP, WhatsApp) and say what to fix')
    .action(action(async () => (await import('../commands/doctor.js')).doctor));

  program
    .command('listen')
    .description('print stored events (received messages, ...) oldest first; --follow keeps printing new ones')
    .argument('[ids...]', 'only these sessions', sessionIdsArg, [])
    .option('--since <cursor>', 'only events after this cursor (as printed with --json)', cursorArg)
    .option('--follow', 'then keep printing new events until Ctrl-C')
    .option('--limit <n>', 'print at most n events', positiveIntArg('--limit'))
    .action(action(async () => (await import('../commands/listen.js')).listen));

  program
    .command('send')
    .description('send a text message through the outbox (text "-" or absent: read from stdin)')
    .argument('<id>', 'session id', sessionIdArg)
    .argument('<to>', 'recipient: +15551234567, 15551234567, 15551234567@s.whatsapp.net or <lid>@lid')
    .argument('[text]', 'the text; "-" or absent reads stdin')
    .option(
      '--key <k>',
      'idempotency key: the same session and key return the existing message instead of sending again',
    )
    .addOption(
      new Option('--wait <state>', 'exit once the message is queued, sent (server ack) or delivered')
        .choices(['queued', 'sent', 'delivered'])
        .default('sent'),
    )
    .addOption(
      new Option('--timeout <seconds>', 'give up after this long (a message still queued is cancelled)')
        .argParser(secondsArg('--timeout'))
        .default(60_000, '60'),
    )
    .action(
      action(async () => {
        const { send } = await import('../commands/send.js');
        return (
          ctx: Context,
          id: string,
          to: string,
          text: string | undefined,
          o: { key?: string; wait: 'queued' | 'sent' | 'delivered'; timeout: number },
        ) => send(ctx, id, to, text, { key: o.key, wait: o.wait, timeoutMs: o.timeout });
      }),
    );

  program
    .command('serve')
    .description('keep every paired session (or the listed ones) connected; stop with Ctrl-C or SIGTERM')
    .argument('[ids...]', 'serve only these sessions', sessionIdsArg, [])
    .option(
      '--http <[host:]port>',
      'serve /healthz, /readyz, /sessions and /metrics (default: 0.0.0.0:$PORT when PORT is set)',
      httpAddressArg,
    )
    .action(action(async () => (await import('../commands/serve.js')).serve));

  try {
    if (io.argv.length === 0) {
      io.stderr.write(program.helpInformation());
      return ExitCode.usage;
    }
    await program.parseAsync([...io.argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      ) {
        return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      }
      return report(out, usageError(error.code, usageOutput.join(' ') || error.message, { hint: 'wa --help' }), debug);
    }
    return report(out, error, debug);
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** Errors go to stderr as `Error:` and `Try:` lines; stdout stays empty (connect's --json stream reports its own). */
function report(out: Output, error: unknown, debug: boolean): ExitCodeType {
  if (isWaError(error)) {
    out.info(`Error: ${error.message}`);
    if (error.hint) out.info(`Try: ${error.hint}`);
    if (debug && error.cause instanceof Error && error.cause.stack) out.info(error.cause.stack);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  out.info(`Error: ${message}`);
  out.info(
    debug && error instanceof Error && error.stack
      ? error.stack
      : 'This is a bug in wa: please report it, with the output of --log-level debug.',
  );
  return ExitCode.unexpected;
}
