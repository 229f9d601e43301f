import { describe, expect, it } from 'vitest';
import { checkWebhook } from '../../src/commands/doctor.js';

describe('wa doctor: the webhook check', () => {
  it('names where events go (the origin only), and warns about plain http beyond this host', () => {
    expect(
      checkWebhook({ url: 'https://hooks.example/wa?token=abc', secret: 'hunter2', events: ['message', 'status'] }),
    ).toEqual({
      name: 'webhook',
      status: 'ok',
      message: 'wa serve posts message, status to https://hooks.example, signed with WA_WEBHOOK_SECRET',
      hint: null,
    });
    expect(checkWebhook({ url: 'http://127.0.0.1:8080/wa', secret: 's', events: undefined })).toMatchObject({
      status: 'ok',
      message: expect.stringContaining('every event type') as unknown,
    });
    const plain = checkWebhook({ url: 'http://hooks.example/wa', secret: 'hunter2', events: undefined });
    expect(plain).toMatchObject({ status: 'warn', hint: 'use an https:// WA_WEBHOOK_URL' });
    expect(JSON.stringify(plain)).not.toContain('hunter2');
  });
});
