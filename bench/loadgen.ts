// Open-loop, fixed-rate load generator for the latency half of `npm run bench`.
//
// Requests are scheduled at intended times t_i = start + i / rate over a fixed
// set of keep-alive connections (HTTP/1.1: one request in flight per
// connection, as wrk2 does; HTTP/2: streams over `connections` sessions).
// Coordinated omission: when a request cannot be sent at its intended time
// because every connection is still busy (the system under test is slow),
// its latency is measured from the intended time, so stalls show up in the
// tail instead of silently lowering the offered rate. When it only waited for
// this generator's own timer tick (Node timers have ~1 ms granularity), it is
// measured from the moment it was written, so the generator's jitter is not
// charged to the proxy. Both figures are reported.
//
// Usage (a child process of bench/run.ts, pinned to its own core):
//   node bench/loadgen.ts '{"url":"http://127.0.0.1:8080/","rate":1000,"durationMs":10000,"connections":16,"proto":"h1"}'
// Prints one JSON line: LoadgenResult.
import net from 'node:net';
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';

export interface LoadgenOptions {
  url: string;
  rate: number;
  durationMs: number;
  connections: number;
  proto: 'h1' | 'h2' | 'grpc';
  /** Hard stop for the whole run (ms), beyond durationMs, to drain replies. */
  graceMs?: number;
}

export interface LoadgenResult {
  proto: string;
  rate: number;
  sent: number;
  completed: number;
  errors: number;
  achievedRate: number;
  /** Percentiles in microseconds, coordinated-omission corrected. */
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number };
  /** From the moment the request was written (service time). */
  serviceUs: { p50: number; p90: number; p99: number; p999: number; max: number };
  firstError?: string;
}

function percentiles(xs: number[]): LoadgenResult['latencyUs'] {
  const s = Float64Array.from(xs).sort();
  const at = (q: number): number => (s.length === 0 ? 0 : Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 1000));
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: s.length ? Math.round(s[s.length - 1]! * 1000) : 0 };
}

/** The first failure seen, reported to explain errors. */
let lastError: string | undefined;

interface Slot {
  send(done: (ok: boolean) => void): void;
  busy: boolean;
  close(): void;
}

function h1Slot(host: string, port: number, path: string): Promise<Slot> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, noDelay: true });
    const req = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: trellis-loadgen\r\n\r\n`);
    let buf: Buffer = Buffer.alloc(0);
    let cb: ((ok: boolean) => void) | null = null;
    const slot: Slot = {
      busy: false,
      send(done) {
        slot.busy = true;
        cb = done;
        sock.write(req);
      },
      close() {
        sock.destroy();
      },
    };
    const finish = (ok: boolean): void => {
      const c = cb;
      cb = null;
      slot.busy = false;
      c?.(ok);
    };
    sock.on('connect', () => resolve(slot));
    sock.on('error', (err) => {
      if (cb) finish(false);
      reject(err);
    });
    sock.on('close', () => {
      if (cb) finish(false);
    });
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end).toLowerCase();
        const m = /\r\ncontent-length:\s*(\d+)/.exec(head);
        let total: number;
        if (m) total = end + 4 + Number(m[1]);
        else if (head.includes('transfer-encoding: chunked')) {
          const z = buf.indexOf('\r\n0\r\n\r\n', end);
          if (z < 0) return;
          total = z + 7;
        } else total = end + 4;
        if (buf.length < total) return;
        const ok = head.startsWith('http/1.1 2');
        buf = buf.subarray(total);
        finish(ok);
      }
    });
  });
}

function h2Slot(origin: string, path: string, grpc: boolean): Promise<Slot> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(origin);
    // Each "slot" is a session; it takes many concurrent streams, so busy stays false.
    const body = grpc ? Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x61, 0x62, 0x63]) : null;
    const slot: Slot = {
      busy: false,
      send(done) {
        const headers: http2.OutgoingHttpHeaders = grpc
          ? { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }
          : { ':method': 'GET', ':path': path };
        const stream = session.request(headers, { endStream: !grpc });
        let status = 0;
        let grpcStatus: string | undefined;
        stream.on('response', (h) => {
          status = Number(h[':status']);
          if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
        });
        stream.on('trailers', (t) => {
          if (t['grpc-status'] !== undefined) grpcStatus = String(t['grpc-status']);
        });
        stream.on('data', () => {});
        stream.on('error', (err) => {
          lastError ??= err.message;
        });
        stream.on('close', () => {
          const ok = status === 200 && (!grpc || grpcStatus === '0');
          if (!ok) lastError ??= `status ${status} grpc-status ${grpcStatus ?? '-'}`;
          done(ok);
        });
        if (body) stream.end(body);
      },
      close() {
        session.destroy();
      },
    };
    session.on('connect', () => resolve(slot));
    session.on('error', reject);
  });
}

export async function runLoad(opts: LoadgenOptions): Promise<LoadgenResult> {
  const u = new URL(opts.url);
  const host = u.hostname;
  const port = Number(u.port);
  const path = u.pathname + u.search;
  const slots: Slot[] = [];
  for (let i = 0; i < opts.connections; i++) {
    slots.push(await (opts.proto === 'h1' ? h1Slot(host, port, path) : h2Slot(u.origin, path, opts.proto === 'grpc')));
  }
  const total = Math.round((opts.rate * opts.durationMs) / 1000);
  const interval = 1000 / opts.rate;
  const corrected: number[] = [];
  const service: number[] = [];
  let sent = 0;
  let completed = 0;
  let errors = 0;
  let next = 0; // next request index to schedule
  let rr = 0;
  const waiting: number[] = []; // intended times of requests held back by busy connections
  const start = performance.now() + 50;

  const freeSlot = (): Slot | undefined => {
    for (let k = 0; k < slots.length; k++) {
      const s = slots[(rr + k) % slots.length]!;
      if (!s.busy) {
        rr = (rr + k + 1) % slots.length;
        return s;
      }
    }
    return undefined;
  };

  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | null = null;
    let finished = false;
    const hardStop = setTimeout(() => done(), opts.durationMs + 50 + (opts.graceMs ?? 5000));

    const fire = (slot: Slot, intended: number, heldBack: boolean): void => {
      const writtenAt = performance.now();
      sent++;
      slot.send((ok) => {
        const now = performance.now();
        if (ok) {
          completed++;
          corrected.push(now - (heldBack ? intended : writtenAt));
          service.push(now - writtenAt);
        } else errors++;
        // A connection came free: serve the oldest held-back request first.
        const w = waiting.shift();
        if (w !== undefined) {
          const s = freeSlot();
          if (s) fire(s, w, true);
          else waiting.unshift(w);
        }
        if (completed + errors >= total) done();
      });
    };

    const tick = (): void => {
      const now = performance.now();
      while (next < total && start + next * interval <= now) {
        const intended = start + next * interval;
        next++;
        const s = waiting.length === 0 ? freeSlot() : undefined;
        if (s) fire(s, intended, false);
        else waiting.push(intended);
      }
      if (next < total) {
        const due = start + next * interval - performance.now();
        timer = setTimeout(tick, Math.max(0, due));
      }
    };

    const done = (): void => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      clearTimeout(hardStop);
      for (const s of slots) s.close();
      const elapsed = Math.max(1, performance.now() - start);
      resolve({
        proto: opts.proto,
        rate: opts.rate,
        sent,
        completed,
        errors: errors + (total - completed - errors),
        achievedRate: Math.round((completed / elapsed) * 1000),
        latencyUs: percentiles(corrected),
        serviceUs: percentiles(service),
        ...(lastError ? { firstError: lastError } : {}),
      });
    };
    timer = setTimeout(tick, Math.max(0, start - performance.now()));
  });
}

if (import.meta.main) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as LoadgenOptions;
  runLoad(opts).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
