#!/usr/bin/env node
// A shim over the compiled CLI: the only place that exits is the code below, with the CLI's result.
const { run } = await import('../dist/cli/main.js');
process.exitCode = await run({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
});
