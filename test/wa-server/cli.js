#!/usr/bin/env node
// @ts-check
/**
 * Run the loopback WhatsApp test server as a standalone process.
 *
 *   node test/wa-server/cli.js [--port 0] [--admin-port 0] [--host 127.0.0.1] [--refs 6]
 *                              [--seed S] [--known 15550001111,15550002222]
 *
 * Prints exactly one JSON line on stdout once listening:
 *   {"url":"ws://127.0.0.1:PORT/ws/chat","port":PORT,"rootPublicKey":"<base64>","adminUrl":"http://127.0.0.1:APORT"}
 * and serves until SIGTERM/SIGINT (or stdin closes when --exit-on-stdin-close is given).
 * See admin.js for the admin routes.
 */
import { parseArgs, format } from 'node:util';
import { startTestServer } from './server.js';
import { startAdminServer } from './admin.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'admin-port': { type: 'string', default: '0' },
    refs: { type: 'string', default: '6' },
    seed: { type: 'string' },
    known: { type: 'string' },
    'exit-on-stdin-close': { type: 'boolean', default: false },
  },
});

// stdout carries exactly one JSON line: libsignal (the simulated phones) writes console.info/log
// noise such as "Closing session: …" (libsignal/src/session_record.js); send it to stderr
for (const m of /** @type {const} */ (['log', 'info', 'debug'])) {
  console[m] = (...args) => void process.stderr.write(format(...args) + '\n');
}

const host = String(values.host);
if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
  console.error('wa test server: refusing to listen on a non-loopback host');
  process.exit(2);
}

const server = await startTestServer({
  host,
  port: Number(values.port),
  refs: Number(values.refs),
  seed: values.seed,
  knownNumbers: values.known ? String(values.known).split(',').filter(Boolean) : [],
});
const admin = await startAdminServer(server, { host, port: Number(values['admin-port']) });

process.stdout.write(
  JSON.stringify({
    url: server.url,
    port: server.port,
    rootPublicKey: server.rootPublicKeyBase64,
    adminUrl: admin.url,
  }) + '\n',
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.all([server.close(), admin.close()]);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (values['exit-on-stdin-close']) {
  process.stdin.on('end', stop);
  process.stdin.resume();
}
