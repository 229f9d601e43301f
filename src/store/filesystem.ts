/**
 * What kind of filesystem a SQLite database sits on, read from /proc/self/mountinfo (Linux). The failure
 * this project was born from is a login kept on a container's own filesystem: overlay (the image's
 * writable layer) and tmpfs vanish on every redeploy. Network filesystems break SQLite's locking and can
 * corrupt the file (https://www.sqlite.org/howtocorrupt.html, section 2.1).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export type FilesystemRisk = 'ephemeral' | 'network' | undefined;

export interface FilesystemReport {
  mountPoint: string;
  type: string;
  risk: FilesystemRisk;
  /** Why it matters, for a warning line; undefined when there is nothing to say. */
  warning: string | undefined;
}

const EPHEMERAL = new Set(['overlay', 'overlayfs', 'tmpfs', 'ramfs', 'aufs']);
const NETWORK = new Set([
  'nfs',
  'nfs4',
  'cifs',
  'smb3',
  'smbfs',
  'fuse.sshfs',
  '9p',
  'afs',
  'ceph',
  'glusterfs',
  'fuse.s3fs',
]);

/** `\040` and friends: mountinfo escapes spaces, tabs, newlines and backslashes in paths as octal. */
const unescape = (path: string): string =>
  path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The mount that holds `path` (the longest mount point that is a prefix of it) in a mountinfo text. */
export function classifyFilesystem(path: string, mountinfo: string): FilesystemReport | undefined {
  const target = resolve(path);
  let best: { mountPoint: string; type: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mount-point options [optional fields…] - type source super-options
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    if (fields.length < 5 || separator < 0) continue;
    const mountPoint = unescape(fields[4]!);
    const type = fields[separator + 1] ?? '';
    const inside = mountPoint === '/' || target === mountPoint || target.startsWith(`${mountPoint}/`);
    // Later lines win on equal length: a mount over a mount point hides the earlier one.
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, type };
  }
  if (!best) return undefined;
  const risk: FilesystemRisk = EPHEMERAL.has(best.type) ? 'ephemeral' : NETWORK.has(best.type) ? 'network' : undefined;
  const warning =
    risk === 'ephemeral'
      ? `the database ${target} is on ${best.type} (${best.mountPoint}), which does not survive a redeploy or restart: every session would have to pair again; put it on a volume (WA_DB=/data/wa.db) or use PostgreSQL`
      : risk === 'network'
        ? `the database ${target} is on a network filesystem (${best.type}, ${best.mountPoint}), where SQLite's locking is unreliable and the file can be corrupted; use a local volume or PostgreSQL`
        : undefined;
  return { ...best, risk, warning };
}

/** The filesystem a SQLite database file is (or will be) on; undefined off Linux. */
export function databaseFilesystem(
  dbPath: string,
  readMountinfo: () => string = () => readFileSync('/proc/self/mountinfo', 'utf8'),
): FilesystemReport | undefined {
  if (dbPath === ':memory:') return undefined;
  let mountinfo: string;
  try {
    mountinfo = readMountinfo();
  } catch {
    return undefined;
  }
  return classifyFilesystem(resolve(dbPath), mountinfo);
}
