// One process at a time may own a store's data directory. The lock is a file
// holding the owner's pid, created with O_EXCL; a lock left by a process that
// died (SIGKILL, power loss) is taken over when that pid is no longer alive.
//
// The directory holds the mesh CA's private keys (in the database): it is
// made 0700 and its files 0600, and a directory or file found more open
// (made by an older version, or by hand) is tightened with a warning.
import { chmodSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, unlinkSync, writeSync, closeSync } from 'node:fs';
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

export const DATA_DIR_MODE = 0o700;
export const DATA_FILE_MODE = 0o600;

/** Create `dir` 0700 (or tighten it), and tighten every file in it to 0600;
 * `warn` hears of each mode that had to change. */
export function secureDataDir(dir: string, warn: (msg: string) => void): void {
  mkdirSync(dir, { recursive: true, mode: DATA_DIR_MODE });
  const tighten = (p: string, want: number, what: string): void => {
    const mode = statSync(p).mode & 0o777;
    if ((mode & ~want) === 0) return;
    chmodSync(p, want);
    warn(`${what} ${p} was mode ${mode.toString(8).padStart(4, '0')}; set to ${want.toString(8).padStart(4, '0')} (it holds the mesh CA's private keys)`);
  };
  tighten(dir, DATA_DIR_MODE, 'data directory');
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile()) tighten(join(dir, e.name), DATA_FILE_MODE, 'data file');
  }
}

export function lockDataDir(dir: string, warn: (msg: string) => void = (m) => console.error(`warning: ${m}`)): DataDirLock {
  secureDataDir(dir, warn);
  const path = join(dir, 'trellis.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', DATA_FILE_MODE);
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
