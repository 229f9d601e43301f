import { describe, expect, it } from 'vitest';
import { DEFAULT_DB, resolveConfig } from '../../src/config.js';
import { assertSessionId } from '../../src/session-id.js';
import { phoneOf, summarizeCreds } from '../../src/store/creds-summary.js';

describe('resolveConfig', () => {
  it('takes flag over env over default', () => {
    expect(resolveConfig({}, {}).db).toBe(DEFAULT_DB);
    expect(resolveConfig({}, { WA_DB: '/env.db' }).db).toBe('/env.db');
    expect(resolveConfig({ db: '/flag.db' }, { WA_DB: '/env.db' }).db).toBe('/flag.db');
    expect(resolveConfig({}, { DATABASE_URL: 'postgres://u@h/db' }).db).toBe('postgres://u@h/db');
    expect(resolveConfig({}, { DATABASE_URL: 'mysql://u@h/db' }).db).toBe(DEFAULT_DB);
    expect(resolveConfig({}, { WA_DB: '/env.db', DATABASE_URL: 'postgres://u@h/db' }).db).toBe('/env.db');
  });

  it('validates the endpoint and log level', () => {
    expect(resolveConfig({ wsUrl: 'ws://127.0.0.1:1/ws/chat' }, {}).wsUrl).toBe('ws://127.0.0.1:1/ws/chat');
    expect(resolveConfig({}, { WA_WS_URL: 'wss://x/ws' }).wsUrl).toBe('wss://x/ws');
    expect(() => resolveConfig({ wsUrl: 'http://x' }, {})).toThrow(/invalid WhatsApp endpoint/);
    expect(resolveConfig({}, { WA_LOG_LEVEL: 'debug' }).logLevel).toBe('debug');
    expect(() => resolveConfig({ logLevel: 'chatty' }, {})).toThrow(/invalid log level/);
  });

  it('takes WA_SECRET from the environment only, empty meaning unset', () => {
    expect(resolveConfig({}, {}).secret).toBeUndefined();
    expect(resolveConfig({}, { WA_SECRET: '' }).secret).toBeUndefined();
    expect(resolveConfig({}, { WA_SECRET: 's3cret' }).secret).toBe('s3cret');
  });

  it('reads the message retention from WA_KEEP_DAYS (default 30), refusing what is not a positive number of days', () => {
    expect(resolveConfig({}, {}).keepDays).toBe(30);
    expect(resolveConfig({}, { WA_KEEP_DAYS: '' }).keepDays).toBe(30);
    expect(resolveConfig({}, { WA_KEEP_DAYS: '7' }).keepDays).toBe(7);
    expect(resolveConfig({}, { WA_KEEP_DAYS: '0.5' }).keepDays).toBe(0.5);
    for (const bad of ['0', '-1', 'ten', '1e3', '0x10', '40000']) {
      expect(() => resolveConfig({}, { WA_KEEP_DAYS: bad }), bad).toThrow(
        expect.objectContaining({ code: 'E_CONFIG', exitCode: 2 }) as Error,
      );
    }
  });
});

describe('webhook settings', () => {
  const usage = (message: RegExp) =>
    expect.objectContaining({
      code: 'E_CONFIG',
      exitCode: 2,
      message: expect.stringMatching(message) as string,
    }) as Error;

  it('is off without WA_WEBHOOK_URL, and takes URL, secret and event filter with it', () => {
    expect(resolveConfig({}, {}).webhook).toBeUndefined();
    expect(resolveConfig({}, { WA_WEBHOOK_URL: '', WA_WEBHOOK_SECRET: 's' }).webhook).toBeUndefined();
    expect(resolveConfig({}, { WA_WEBHOOK_URL: 'https://hooks.example/wa', WA_WEBHOOK_SECRET: 's' }).webhook).toEqual({
      url: 'https://hooks.example/wa',
      secret: 's',
      events: undefined,
    });
    const filtered = resolveConfig(
      {},
      { WA_WEBHOOK_URL: 'http://127.0.0.1:9/x', WA_WEBHOOK_SECRET: 's', WA_WEBHOOK_EVENTS: ' status, message ,' },
    );
    // Kept in the documented order, whatever order they were given in.
    expect(filtered.webhook?.events).toEqual(['message', 'status']);
  });

  it('refuses a URL that is not http(s), a URL without a secret, and unknown event types, naming them (exit 2)', () => {
    for (const url of ['ftp://x/y', 'hooks.example/wa', 'ws://x/y', 'http//x']) {
      expect(() => resolveConfig({}, { WA_WEBHOOK_URL: url, WA_WEBHOOK_SECRET: 's' }), url).toThrow(
        usage(/WA_WEBHOOK_URL/),
      );
    }
    expect(() => resolveConfig({}, { WA_WEBHOOK_URL: 'https://u:hunter2@x/y?q=1' }), 'no secret').toThrow(
      usage(/WA_WEBHOOK_SECRET/),
    );
    expect(() => resolveConfig({}, { WA_WEBHOOK_URL: 'https://x/y', WA_WEBHOOK_SECRET: '  ' })).toThrow(
      usage(/WA_WEBHOOK_SECRET/),
    );
    expect(() =>
      resolveConfig(
        {},
        { WA_WEBHOOK_URL: 'https://x/y', WA_WEBHOOK_SECRET: 's', WA_WEBHOOK_EVENTS: 'message,reciept' },
      ),
    ).toThrow(usage(/unknown event type "reciept"/));
    // Checked even before a URL is set.
    expect(() => resolveConfig({}, { WA_WEBHOOK_EVENTS: 'messages' })).toThrow(usage(/"messages"/));
    expect(() => resolveConfig({}, { WA_WEBHOOK_EVENTS: ' , ' })).toThrow(usage(/no event type/));
    // The password of a bad URL is not repeated.
    expect(() => resolveConfig({}, { WA_WEBHOOK_URL: 'ftp://u:hunter2@x/y', WA_WEBHOOK_SECRET: 's' })).toThrow(
      expect.not.objectContaining({ message: expect.stringContaining('hunter2') as string }) as Error,
    );
  });

  it('has webhook timing in WA_TIMING: 10 s timeout, 1 s to 5 min backoff, dead after 24 h, polled every 50 ms', () => {
    expect(resolveConfig({}, {}).timing).toMatchObject({
      webhookTimeoutMs: 10_000,
      webhookBaseMs: 1000,
      webhookCapMs: 300_000,
      webhookMaxAgeMs: 86_400_000,
      webhookPollMs: 50,
    });
    expect(
      resolveConfig({}, { WA_TIMING: 'webhookMaxAgeMs=3000,webhookBaseMs=100,webhookCapMs=400' }).timing,
    ).toMatchObject({
      webhookMaxAgeMs: 3000,
      webhookCapMs: 400,
    });
    expect(() => resolveConfig({}, { WA_TIMING: 'webhookBaseMs=5000,webhookCapMs=400' })).toThrow(
      usage(/webhookBaseMs must not exceed webhookCapMs/),
    );
  });
});

describe('session ids', () => {
  it('accepts the documented id pattern only', () => {
    for (const ok of ['a', 'A1', 'bot.1', 'x_y-z', 'a'.repeat(64)]) expect(assertSessionId(ok)).toBe(ok);
    for (const bad of ['', '../x', 'a b', '.a', '-a', '_a', 'a'.repeat(65), 'a/b', 'ä'])
      expect(() => assertSessionId(bad)).toThrow(/invalid session id/);
  });
});

describe('creds summary', () => {
  it('calls a session paired only when creds.account is present', () => {
    expect(summarizeCreds('{"me":{"id":"1@s.whatsapp.net","name":"~"}}')).toEqual({
      paired: false,
      jid: null,
      name: null,
    });
    expect(summarizeCreds('{"me":{"id":"1:2@s.whatsapp.net","name":"A"},"account":{}}')).toEqual({
      paired: true,
      jid: '1:2@s.whatsapp.net',
      name: 'A',
    });
    expect(summarizeCreds('{"trunc')).toBeUndefined();
    expect(summarizeCreds('null')).toBeUndefined();
  });

  it('derives the phone number from a jid', () => {
    expect(phoneOf('4915112345678:12@s.whatsapp.net')).toBe('4915112345678');
    expect(phoneOf('123@lid')).toBeNull();
    expect(phoneOf(null)).toBeNull();
    expect(phoneOf('abc@s.whatsapp.net')).toBeNull();
  });
});
