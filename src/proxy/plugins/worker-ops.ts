// The worker side of a plugin thread's side channel to the proxy (both
// kinds: ts-worker.ts and wasm-worker.ts): metric updates and logs (`Op`s)
// are batched and sent once per turn of the worker's event loop, each batch
// with the thread's CPU time so far; answers to hook calls carry the ops
// queued before them (`takeOps`).
import { parentPort } from 'node:worker_threads';
import type { Op, ToMain } from './ts-protocol.ts';

const port = parentPort!;
let ops: Op[] = [];
let flushScheduled = false;

/** The worker thread's CPU time (user + system), in microseconds. */
export function cpuMicros(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

export function post(m: ToMain): void {
  port.postMessage(m);
}

/** The ops queued so far, handed over (the queue starts empty again). */
export function takeOps(): Op[] {
  const o = ops;
  ops = [];
  return o;
}

/** Queue an op; a batch goes out at the end of this turn unless an answer takes it first. */
export function op(o: Op): void {
  ops.push(o);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(() => {
      flushScheduled = false;
      if (ops.length > 0) post({ t: 'ops', cpu: cpuMicros(), ops: takeOps() });
    });
  }
}
