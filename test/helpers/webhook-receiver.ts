/**
 * A webhook receiver for end-to-end tests (README "Webhooks"): a plain node:http server on 127.0.0.1 that
 * records every request and answers as the test scripts it, can go down (the port refuses connections)
 * and come back on the same port, and checks signatures with its own HMAC, as a real receiver would.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  /** X-Wa-Event-Id. */
  id: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body parsed (the event as `wa listen --json` prints it). */
  event: { cursor: string; session: string; type: string; id?: string; text?: string } & Record<string, unknown>;
  /** Date.now() when it arrived. */
  at: number;
}

/** What to do with a request: a status to answer with, or 'hang' (never answer); may wait first. */
export type Answer = number | 'hang';

export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  /** Scripted answers; 200 to everything by default. `index` counts every request so far. */
  answer: (delivery: Delivery, index: number) => Answer | Promise<Answer> = () => 200;
  port = 0;
  private server: Server | undefined;
  private readonly hanging = new Set<ServerResponse>();
  private readonly secret: string;

  constructor(secret: string) {
    this.secret = secret;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/wa`;
  }

  /** Listens (on the port it had before, when it had one). */
  async up(): Promise<void> {
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        let event: Delivery['event'];
        try {
          event = JSON.parse(body) as Delivery['event'];
        } catch {
          event = { cursor: '', session: '', type: 'unparsable' };
        }
        const delivery: Delivery = {
          id: String(req.headers['x-wa-event-id'] ?? ''),
          headers: req.headers,
          body,
          event,
          at: Date.now(),
        };
        this.deliveries.push(delivery);
        void Promise.resolve(this.answer(delivery, this.deliveries.length - 1)).then((answer) => {
          if (answer === 'hang') {
            this.hanging.add(res);
            return;
          }
          res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'ok' : 'no');
        });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening: connections to the port are refused until up() again. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Whether X-Wa-Signature is `t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, by our own computation. */
  verifies(delivery: Delivery): boolean {
    const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(delivery.headers['x-wa-signature'] ?? ''));
    if (!match) return false;
    const expected = createHmac('sha256', this.secret).update(`${match[1]}.${delivery.body}`).digest('hex');
    // The timestamp is this attempt's: within a few seconds of its arrival.
    return expected === match[2] && Math.abs(Number(match[1]) - delivery.at / 1000) < 5;
  }

  /** The deliveries of one session, in arrival order. */
  of(session: string): Delivery[] {
    return this.deliveries.filter((d) => d.event.session === session);
  }
}

/**
 * The README's guarantees on one session's deliveries, checked strictly: every request signed and its
 * event id its body's cursor; per session in cursor order (a repeat only of the event just posted, never
 * of an older one); one body per event id however often it is retried. Returns the distinct ids in order.
 */
export function checkDeliveries(receiver: WebhookReceiver, session: string): string[] {
  const list = receiver.of(session);
  const bodies = new Map<string, string>();
  const order: string[] = [];
  for (const d of list) {
    if (!receiver.verifies(d))
      throw new Error(`bad signature on event ${d.id}: ${String(d.headers['x-wa-signature'])}`);
    if (d.event.cursor !== d.id) throw new Error(`event id ${d.id} is not the body's cursor ${d.event.cursor}`);
    if (d.headers['content-type'] !== 'application/json') throw new Error(`content-type ${d.headers['content-type']}`);
    const seen = bodies.get(d.id);
    if (seen !== undefined && seen !== d.body) throw new Error(`event ${d.id} was posted with two bodies`);
    bodies.set(d.id, d.body);
    const last = order[order.length - 1];
    if (last === d.id) continue;
    if (last !== undefined && BigInt(d.id) <= BigInt(last)) {
      throw new Error(
        `session ${session}: event ${d.id} posted after ${last} (out of order): ${list.map((x) => x.id).join(' ')}`,
      );
    }
    order.push(d.id);
  }
  return order;
}
