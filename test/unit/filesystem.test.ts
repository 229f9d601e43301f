import { describe, expect, it } from 'vitest';
import { classifyFilesystem, databaseFilesystem } from '../../src/store/filesystem.js';

// Lines as /proc/self/mountinfo has them: id parent dev root mount-point options [optional] - type source super
const MOUNTINFO = [
  '22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w',
  '23 22 0:22 / /data rw,relatime shared:5 - ext4 /dev/vdb rw',
  '24 22 0:23 / /dev/shm rw,nosuid - tmpfs shm rw,size=65536k',
  '25 22 0:24 / /mnt/nas rw - nfs4 nas:/export rw,vers=4.2',
  '26 22 0:25 / /mnt/my\\040share rw - cifs //srv/share rw',
  '27 23 0:26 / /data/cache rw - tmpfs tmpfs rw',
].join('\n');

describe('classifyFilesystem', () => {
  it.each([
    ['/app/data/wa.db', 'overlay', '/', 'ephemeral'],
    ['/data/wa.db', 'ext4', '/data', undefined],
    ['/datastore/wa.db', 'overlay', '/', 'ephemeral'], // a prefix of a name is not a parent directory
    ['/dev/shm/wa.db', 'tmpfs', '/dev/shm', 'ephemeral'],
    ['/mnt/nas/bots/wa.db', 'nfs4', '/mnt/nas', 'network'],
    ['/mnt/my share/wa.db', 'cifs', '/mnt/my share', 'network'],
    ['/data/cache/wa.db', 'tmpfs', '/data/cache', 'ephemeral'], // the innermost mount wins
  ])('%s is on %s (%s): %s', (path, type, mountPoint, risk) => {
    const report = classifyFilesystem(path, MOUNTINFO);
    expect(report).toMatchObject({ type, mountPoint, risk });
    if (risk === 'ephemeral') expect(report?.warning).toMatch(/does not survive a redeploy/);
    if (risk === 'network') expect(report?.warning).toMatch(/network filesystem/);
    if (!risk) expect(report?.warning).toBeUndefined();
  });

  it('says nothing for :memory: or without mountinfo, and reads the real one on Linux', () => {
    expect(databaseFilesystem(':memory:')).toBeUndefined();
    expect(
      databaseFilesystem('/x/wa.db', () => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
    expect(databaseFilesystem('/dev/shm/wa.db')).toMatchObject({ type: 'tmpfs', risk: 'ephemeral' });
  });
});
