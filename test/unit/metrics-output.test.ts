import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/daemon/metrics.js';
import { sessionView } from '../../src/session/session-view.js';
import type { SessionRecord } from '../../src/store/types.js';
import { createOutput, table } from '../../src/terminal/output.js';
import { captureStream } from '../helpers/capture-stream.js';

const record = (id: string, patch: Partial<SessionRecord> = {}): SessionRecord => ({
  id,
  label: null,
  state: 'paired',
  jid: '15551234567:3@s.whatsapp.net',
  name: 'Ada',
  createdAt: '2026-01-01T00:00:00.000Z',
  pairedAt: null,
  lastConnectedAt: null,
  lastDisconnect: null,
  connection: 'open',
  lease: { ownerId: 'serve-1', host: 'h', pid: 1, expiresAt: Date.parse('2030-01-01') },
  corruptKey: null,
  ...patch,
});

describe('Metrics.render', () => {
  it('counts received and undecryptable messages', () => {
    const metrics = new Metrics();
    expect(metrics.render([])).toMatch(/^wa_messages_received_total 0$/m);
    metrics.messagesReceived(2);
    metrics.messagesReceived(1);
    metrics.messagesUndecryptable(1);
    const text = metrics.render([]);
    expect(text).toMatch(/^# TYPE wa_messages_received_total counter$/m);
    expect(text).toMatch(/^wa_messages_received_total 3$/m);
    expect(text).toMatch(/^wa_messages_undecryptable_total 1$/m);
  });

  it('counts outgoing messages by state, every state listed', () => {
    const text = new Metrics().render(
      [],
      new Map([
        ['sent', 4],
        ['unknown', 1],
      ]),
    );
    expect(text).toMatch(/^# TYPE wa_messages gauge$/m);
    expect(text).toMatch(/^wa_messages\{direction="out",state="sent"\} 4$/m);
    expect(text).toMatch(/^wa_messages\{direction="out",state="unknown"\} 1$/m);
    expect(text).toMatch(/^wa_messages\{direction="out",state="queued"\} 0$/m);
    expect(text.match(/^wa_messages\{/gm)).toHaveLength(8);
  });

  it('counts webhook attempts by result, and shows pending and dead events from the database when configured', () => {
    const metrics = new Metrics();
    const idle = metrics.render([]);
    expect(idle).toMatch(/^wa_webhook_deliveries_total\{result="ok"\} 0$/m);
    expect(idle).not.toMatch(/wa_webhook_pending_events/); // not configured: no stats were read
    metrics.webhookDelivery('ok');
    metrics.webhookDelivery('ok');
    metrics.webhookDelivery('failed');
    metrics.webhookDelivery('dead');
    const stats = (pending: number, dead: number) => ({
      pending,
      dead,
      delivered: 0,
      attempts: 0,
      nextAttemptAt: null,
      lastError: null,
      tracked: true,
    });
    const text = metrics.render(
      [],
      new Map(),
      new Map([
        ['a', stats(3, 1)],
        ['b', stats(2, 0)],
      ]),
    );
    expect(text).toMatch(/^# TYPE wa_webhook_deliveries_total counter$/m);
    expect(text).toMatch(/^wa_webhook_deliveries_total\{result="ok"\} 2$/m);
    expect(text).toMatch(/^wa_webhook_deliveries_total\{result="failed"\} 1$/m);
    expect(text).toMatch(/^wa_webhook_deliveries_total\{result="dead"\} 1$/m);
    expect(text).toMatch(/^# TYPE wa_webhook_pending_events gauge$/m);
    expect(text).toMatch(/^wa_webhook_pending_events 5$/m);
    expect(text).toMatch(/^wa_webhook_dead_events 1$/m);
  });

  it('renders sessions by state and connection, counters, the write histogram and rejections', () => {
    const metrics = new Metrics(() => 3);
    metrics.connect('open');
    metrics.connect('failed');
    metrics.connect('failed');
    metrics.disconnect(428, 'retry');
    metrics.disconnect(null, 'closed');
    metrics.keyStoreWrite(3, true);
    metrics.keyStoreWrite(700, false);
    const text = metrics.render(
      [
        record('a'),
        record('b', { state: 'logged_out', lease: null }),
        record('c', { state: 'unpaired', connection: 'open', lease: null }),
      ].map(sessionView),
    );
    const lines = text.split('\n');
    expect(lines).toContain('wa_sessions{state="paired"} 1');
    expect(lines).toContain('wa_sessions{state="logged_out"} 1');
    expect(lines).toContain('wa_sessions{state="replaced"} 0');
    // a connection without a live lease is closed, whatever was last written
    expect(lines).toContain('wa_connections{connection="open"} 1');
    expect(lines).toContain('wa_connections{connection="closed"} 2');
    expect(lines).toContain('wa_connects_total{result="failed"} 2');
    expect(lines).toContain('wa_disconnects_total{code="428",action="retry"} 1');
    expect(lines).toContain('wa_disconnects_total{code="none",action="closed"} 1');
    expect(lines).toContain('wa_keystore_write_seconds_bucket{le="0.005"} 1');
    expect(lines).toContain('wa_keystore_write_seconds_bucket{le="1"} 2');
    expect(lines).toContain('wa_keystore_write_seconds_bucket{le="+Inf"} 2');
    expect(lines).toContain('wa_keystore_write_seconds_count 2');
    expect(lines).toContain('wa_keystore_write_failures_total 1');
    expect(lines).toContain('wa_unhandled_rejections_total 3');
    expect(lines.filter((l) => l.startsWith('# TYPE'))).toHaveLength(
      lines.filter((l) => l.startsWith('# HELP')).length,
    );
    expect(text.endsWith('\n')).toBe(true);
  });
});

describe('terminal output', () => {
  const capture = captureStream;

  it('puts results on stdout and everything human on stderr', () => {
    const stdout = capture(false);
    const stderr = capture(false);
    const out = createOutput({ stdout, stderr }, true);
    out.data({ a: 1 });
    out.info('working');
    out.warn('careful');
    out.raw('QR');
    expect(stdout.text).toBe('{"a":1}\n');
    expect(stderr.text).toBe('working\nWarning: careful\nQR');
    expect(out.json).toBe(true);
  });

  it('table aligns columns and trims the last one', () => {
    expect(
      table(
        ['ID', 'STATE'],
        [
          ['a', 'paired'],
          ['longer-id', '-'],
        ],
      ),
    ).toBe('ID         STATE\na          paired\nlonger-id  -');
  });
});
