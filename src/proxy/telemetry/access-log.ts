// Access logs: one JSON object per line per completed request, to stdout or
// a file. Off by default; switched at runtime (admin `POST /logging?access=on`)
// and per destination service (config), with a sampling rate. Writes never
// block the proxy: when the sink is more than `maxBufferedBytes` behind,
// lines are dropped and counted (`dropped()`).
import fs from 'node:fs';

export interface AccessLogEntry {
  readonly start_time: string;
  readonly direction: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly protocol: string;
  readonly response_code: number;
  readonly grpc_status: string;
  readonly response_flags: string;
  /** First request byte to the end of the response. */
  readonly duration_ms: number;
  /** First request byte to the response head (null when none was sent). */
  readonly response_ms: number | null;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly route: string | null;
  readonly upstream_cluster: string | null;
  readonly upstream_host: string | null;
  readonly attempts: number;
  readonly downstream_remote_address: string;
  readonly source_workload: string;
  readonly source_namespace: string;
  readonly source_principal: string | null;
  readonly destination_workload: string;
  readonly destination_namespace: string;
  readonly destination_service: string;
  readonly trace_id: string | null;
  readonly request_id: string | null;
  readonly user_agent: string | null;
}

export type AccessLogSink = 'stdout' | { readonly path: string } | ((line: string) => void);

export interface AccessLogOptions {
  /** Global switch. Default false. */
  readonly enabled?: boolean;
  readonly sink?: AccessLogSink;
  /** Fraction of requests logged, 0..1. Default 1. */
  readonly sampleRate?: number;
  /** Per destination service host (`reviews.default.svc.cluster.local`): on
   * or off regardless of the global switch. */
  readonly services?: Readonly<Record<string, boolean>>;
  readonly maxBufferedBytes?: number;
  readonly random?: () => number;
}

export class AccessLog {
  private enabledFlag: boolean;
  private readonly services: ReadonlyMap<string, boolean>;
  private readonly anyServiceOn: boolean;
  private readonly sampleRate: number;
  private readonly random: () => number;
  private readonly write: (line: string) => boolean;
  private readonly close_: () => Promise<void>;
  private droppedCount = 0;
  private writtenCount = 0;
  /** True when some request may be logged: the one check on the hot path. */
  active: boolean;

  constructor(o: AccessLogOptions = {}) {
    this.enabledFlag = o.enabled ?? false;
    this.services = new Map(Object.entries(o.services ?? {}));
    this.anyServiceOn = [...this.services.values()].some(Boolean);
    this.sampleRate = o.sampleRate ?? 1;
    if (!(this.sampleRate >= 0 && this.sampleRate <= 1)) throw new Error('accessLog.sampleRate: must be between 0 and 1');
    this.random = o.random ?? Math.random;
    this.active = this.enabledFlag || this.anyServiceOn;
    const max = o.maxBufferedBytes ?? 1 << 20;
    const sink = o.sink ?? 'stdout';
    if (typeof sink === 'function') {
      this.write = (line) => {
        sink(line);
        return true;
      };
      this.close_ = async () => {};
    } else {
      const stream = sink === 'stdout' ? process.stdout : fs.createWriteStream(sink.path, { flags: 'a' });
      if (sink !== 'stdout') stream.on('error', () => {});
      this.write = (line) => {
        if (stream.writableLength > max) return false;
        stream.write(line);
        return true;
      };
      this.close_ = sink === 'stdout' ? async () => {} : () => new Promise<void>((r) => (stream as fs.WriteStream).end(() => r()));
    }
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** Runtime switch (admin API). */
  setEnabled(on: boolean): void {
    this.enabledFlag = on;
    this.active = on || this.anyServiceOn;
  }

  /** Whether a request to this destination service is logged (sampling included). */
  wants(destinationService: string): boolean {
    const on = this.services.get(destinationService) ?? this.enabledFlag;
    if (!on) return false;
    return this.sampleRate >= 1 || this.random() < this.sampleRate;
  }

  log(entry: AccessLogEntry): void {
    if (this.write(`${JSON.stringify(entry)}\n`)) this.writtenCount++;
    else this.droppedCount++;
  }

  written(): number {
    return this.writtenCount;
  }

  dropped(): number {
    return this.droppedCount;
  }

  close(): Promise<void> {
    return this.close_();
  }
}
