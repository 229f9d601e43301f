import { describe, expect, it } from 'vitest';
import { holderIsGone, newOwner, ownerHost, SessionLease, type ProcReader } from '../../src/session/lease.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const BOOT = '7c1e0d2a-5b1f-4c55-9d0e-3a2b1c0d9e8f';
const stat = (pid: number, start: string): string =>
  `${pid} (node (wa) x) S 1 ${pid} ${pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 11 0 ${start} 1 2 3`;

/** /proc as one container sees it: its boot id, its PID namespace and the processes in it. */
function proc(namespace: string, processes: Record<number, string>, boot = BOOT): ProcReader {
  return {
    readFile: (path) => {
      if (path === '/proc/sys/kernel/random/boot_id') return `${boot}\n`;
      const pid = /^\/proc\/(\d+)\/stat$/.exec(path)?.[1];
      const start = pid === undefined ? undefined : processes[Number(pid)];
      return start === undefined ? undefined : stat(Number(pid), start);
    },
    readLink: (path) => (path === '/proc/self/ns/pid' ? namespace : undefined),
  };
}

describe('lease holder identity (boot, PID namespace, process start time)', () => {
  const holderHere = { host: ownerHost('web-1', 42, proc('pid:[4026531836]', { 42: '1000' })), pid: 42 };

  it('records the hostname for display plus an identity token', () => {
    expect(holderHere.host).toMatch(/^web-1#[0-9a-f]{16}:1000$/);
  });

  it('same hostname, another PID namespace (another container): not taken, even with the pid absent here', () => {
    expect(holderIsGone(holderHere, proc('pid:[4026532999]', {}))).toBe(false);
  });

  it('same hostname and namespace, another boot: not taken', () => {
    expect(holderIsGone(holderHere, proc('pid:[4026531836]', {}, 'another-boot'))).toBe(false);
  });

  it('same namespace and the pid is dead: taken', () => {
    expect(holderIsGone(holderHere, proc('pid:[4026531836]', {}))).toBe(true);
  });

  it('same namespace, the pid alive with the same start time: not taken', () => {
    expect(holderIsGone(holderHere, proc('pid:[4026531836]', { 42: '1000' }))).toBe(false);
  });

  it('same namespace, the pid alive but started at another time (reused): taken', () => {
    expect(holderIsGone(holderHere, proc('pid:[4026531836]', { 42: '2000' }))).toBe(true);
  });

  it('a bare hostname (an older wa, or no /proc): never taken early', () => {
    expect(holderIsGone({ host: 'web-1', pid: 42 }, proc('pid:[4026531836]', {}))).toBe(false);
    expect(ownerHost('web-1', 42, { readFile: () => undefined, readLink: () => undefined })).toBe('web-1');
  });

  it('SessionLease.acquire takes a dead holder in this namespace at once, and waits for one in another', async () => {
    const store = new SqliteStore(':memory:');
    await store.createSession('s', null);
    const ttl = { ttlMs: 30_000, renewMs: 10_000 };
    const dead = newOwner('connect', 'web-1', 42, proc('pid:[1]', { 42: '1000' }));
    await store.acquireLease('s', dead, ttl.ttlMs, false);
    const elsewhere = new SessionLease(
      store,
      's',
      newOwner('connect', 'web-1', 43, proc('pid:[2]', { 43: '5' })),
      ttl,
      proc('pid:[2]', { 43: '5' }),
    );
    await expect(elsewhere.acquire(false, () => undefined)).rejects.toMatchObject({ code: 'E_BUSY' });
    const here = new SessionLease(
      store,
      's',
      newOwner('connect', 'web-1', 43, proc('pid:[1]', { 43: '5' })),
      ttl,
      proc('pid:[1]', { 43: '5' }),
    );
    await here.acquire(false, () => undefined);
    expect((await store.getSession('s'))!.lease?.ownerId).toBe(here.owner.ownerId);
    await here.release();
    await store.close();
  });
});
