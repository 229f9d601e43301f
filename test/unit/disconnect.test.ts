import { describe, expect, it } from 'vitest';
import { classifyDisconnect } from '../../src/session/disconnect.js';

const boom = (statusCode: number, message = 'x') => Object.assign(new Error(message), { output: { statusCode } });

describe('classifyDisconnect: the disconnect policy of the README', () => {
  it.each([
    [515, 'restart'],
    [401, 'logged_out'],
    [403, 'logged_out'],
    [440, 'replaced'],
    [405, 'stop'],
    [411, 'stop'],
    [428, 'retry'],
    [408, 'retry'],
    [503, 'retry'],
    [500, 'retry'],
    [599, 'retry'],
  ])('%i → %s', (code, action) => {
    expect(classifyDisconnect(boom(code))).toMatchObject({ code, action });
  });

  it('tells an expired QR from a lost connection (both 408)', () => {
    expect(classifyDisconnect(boom(408, 'QR refs attempts ended'))).toMatchObject({
      action: 'qr_expired',
      reason: 'QR code expired',
    });
    expect(classifyDisconnect(boom(408, 'Connection was lost')).action).toBe('retry');
  });

  it('stops on failed identity checks instead of retrying', () => {
    expect(classifyDisconnect(boom(400, 'noise certificate signature invalid')).action).toBe('stop');
    expect(classifyDisconnect(boom(400, 'certification match failed')).action).toBe('stop');
    expect(classifyDisconnect(new Error('Failed to verify account signature'))).toMatchObject({
      code: null,
      action: 'stop',
    });
  });

  it('reads our own graceful end and plain errors', () => {
    expect(classifyDisconnect(undefined)).toEqual({ code: null, reason: 'closed by wa', action: 'closed' });
    expect(classifyDisconnect(new Error('boom'))).toEqual({ code: null, reason: 'boom', action: 'retry' });
  });
});
