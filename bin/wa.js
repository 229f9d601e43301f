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

const { run } = await import('../dist/cli/main.js');
const code = await run({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
  host: hostname(),
  pid: process.pid,
  onUnhandledRejection: (listener) => process.on('unhandledRejection', listener),
});
// Exit once stdout and stderr are flushed, rather than when the event loop drains: a closed Baileys
// socket can leave timers behind (its keep-alive and query timers). A bare process.exit() could cut
// off output still queued for a pipe.
process.exitCode = code;
let unflushed = 2;
const flushed = () => --unflushed === 0 && process.exit(code);
process.stdout.write('', flushed);
process.stderr.write('', flushed);
