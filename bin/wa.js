#!/usr/bin/env node
// A shim over the compiled CLI. The first SIGINT/SIGTERM asks the running command to stop gracefully;
// a second one exits 130 at once. The process ends with the command's exit code.
import { hostname } from 'node:os';

const controller = new AbortController();
let signals = 0;
const onSignal = () => {
  if (++signals > 1) process.exit(130);
  controller.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

// Dependencies write to the console (libsignal prints whole Signal session records, private keys
// included): none of it may reach stdout, which carries only results and JSON. The CLI decides what of it
// to log (src/cli/main.ts: strings at debug, never objects).
const consoleListeners = [];
for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace', 'dir', 'table']) {
  console[method] = (...args) => {
    for (const listener of consoleListeners) listener(method, args);
  };
}

const { run } = await import('../dist/cli/main.js');
const code = await run({
  argv: process.argv.slice(2),
  env: process.env,
  stdin: () => process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
  host: hostname(),
  pid: process.pid,
  onUnhandledRejection: (listener) => process.on('unhandledRejection', listener),
  onConsole: (listener) => consoleListeners.push(listener),
});
// Exit once stdout and stderr are flushed, rather than when the event loop drains: a closed Baileys
// socket can leave timers behind (its keep-alive and query timers). A bare process.exit() could cut
// off output still queued for a pipe.
process.exitCode = code;
let unflushed = 2;
const flushed = () => --unflushed === 0 && process.exit(code);
process.stdout.write('', flushed);
process.stderr.write('', flushed);
