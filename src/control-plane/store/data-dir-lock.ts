// One process at a time may own a store's data directory. The lock is a file
// holding the owner's pid, created with O_EXCL; a lock left by a process that
// died (SIGKILL, power loss) is taken over when that pid is no longer alive.
import { mkdirSync, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { StoreError } from './types.ts';

const heldHere = new Set<string>();

export interface DataDirLock {
  readonly path: string;
  release(): void;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockDataDir(dir: string): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'trellis.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      heldHere.add(path);
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          heldHere.delete(path);
          try {
            unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    } catch {
      continue; // removed meanwhile: try again
    }
    const ours = owner === process.pid;
    if (ours && heldHere.has(path)) {
      throw new StoreError('unavailable', `data directory ${dir} is already open in this process (close the other store first)`);
    }
    if (!ours && Number.isInteger(owner) && owner > 0 && pidAlive(owner)) {
      throw new StoreError('unavailable', `data directory ${dir} is locked by running process ${owner} (${path}); only one process may open it`);
    }
    // Stale: the owner died without releasing.
    try {
      unlinkSync(path);
    } catch {
      // someone else took it over first; the next attempt decides
    }
  }
  throw new StoreError('unavailable', `could not lock data directory ${dir}`);
}
