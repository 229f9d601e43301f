import { describe, expect, it } from 'vitest';
import { cursorArg, httpAddressArg, phoneArg, positiveIntArg, secondsArg, sessionIdsArg } from '../../src/cli/args.js';

describe('argv parsers (the edge validates once)', () => {
  it('--http [host:]port: a bare port binds loopback; IPv6 in brackets; nonsense refused', () => {
    expect(httpAddressArg('8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(httpAddressArg('0.0.0.0:80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(httpAddressArg('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(httpAddressArg(' localhost:0 ')).toEqual({ host: 'localhost', port: 0 });
    for (const bad of ['', '99999', 'host:', ':80', 'a:b:80', '80a', 'http://x:80']) {
      expect(() => httpAddressArg(bad), bad).toThrow(/invalid --http address/);
    }
  });

  it('--since: a decimal event cursor; --limit: a positive whole number', () => {
    expect(cursorArg('0')).toBe('0');
    expect(cursorArg('42')).toBe('42');
    expect(cursorArg('9223372036854775807')).toBe('9223372036854775807');
    for (const bad of ['', '-1', '042', '1.5', '0x10', '1e3', 'abc', ' 1', '12345678901234567890']) {
      expect(() => cursorArg(bad), bad).toThrow(expect.objectContaining({ exitCode: 2 }) as Error);
    }
    const limit = positiveIntArg('--limit');
    expect(limit('1')).toBe(1);
    expect(limit('500')).toBe(500);
    for (const bad of ['0', '-1', '1.5', '1e3', '0x10', '', 'ten', '99999999999']) {
      expect(() => limit(bad), bad).toThrow(/--limit must be a positive whole number/);
    }
  });

  it('--timeout: plain decimal seconds to milliseconds, 0 < s ≤ 86400', () => {
    const timeout = secondsArg('--timeout');
    expect(timeout('180')).toBe(180_000);
    expect(timeout('0.5')).toBe(500);
    expect(timeout('86400')).toBe(86_400_000);
    for (const bad of ['0', '-1', '0x10', '1e3', '86401', '', ' ', 'Infinity', '10s', '.5']) {
      expect(() => timeout(bad), bad).toThrow(/--timeout must be a number of seconds/);
    }
  });

  it('--phone: E.164 digits with the country code, separators and a leading + dropped', () => {
    expect(phoneArg('+49 151 1234-5678')).toBe('4915112345678');
    expect(phoneArg('(1) 555.123.4567')).toBe('15551234567');
    for (const bad of ['0049151123456', '0151123456', '123456', '1234567890123456', '+49abc', '']) {
      expect(() => phoneArg(bad), bad).toThrow(/--phone must be a phone number/);
    }
  });

  it('[ids...] accumulates validated ids', () => {
    expect(sessionIdsArg('b', sessionIdsArg('a', undefined))).toEqual(['a', 'b']);
    expect(() => sessionIdsArg('../x', ['a'])).toThrow(/invalid session id/);
  });
});
