// A request body that can be sent more than once, as Linkerd's ReplayBody:
// the downstream body is read once; what has been read is kept (up to a
// bound, 64 KiB by default) so a retry can send it again, then continue
// with the live remainder. Each attempt gets its own `view()`; a view replays
// the kept chunks with the attempt's backpressure, then goes live. Past the
// bound the kept chunks are dropped and no further view can be made
// (`replayable` turns false): the request simply is not retried.
//
// Views only detach on destroy (a pool destroys the body when its attempt
// ends); the downstream source is destroyed by `release()` once the retry
// layer has its final outcome.
import type { BodySink, BodySource, HeaderList } from '../http/exchange.ts';

export const DEFAULT_REPLAY_LIMIT = 64 * 1024;

export class ReplayBody implements BodySink {
  private readonly source: BodySource;
  private readonly limit: number;
  /** Kept chunks (while not overflowed, or while the current view replays them). */
  chunks: Buffer[] = [];
  private size = 0;
  private overflowed = false;
  private committed = false;
  private started = false;
  private sourcePaused = false;
  private released = false;
  ended = false;
  trailers: HeaderList | null = null;
  error: Error | null = null;
  private current: ReplayView | null = null;
  private views = 0;

  constructor(source: BodySource, limit = DEFAULT_REPLAY_LIMIT) {
    this.source = source;
    this.limit = limit;
    if (source.contentLength !== null && source.contentLength > limit) this.overflowed = true;
  }

  get contentLength(): number | null {
    return this.source.contentLength;
  }

  /** True while another view (attempt) can still be made. */
  get replayable(): boolean {
    return !this.overflowed && !this.committed && !this.released && (this.error === null || this.views === 0);
  }

  /** A body for the next attempt; the previous view is detached. */
  view(): BodySource {
    if (this.views > 0 && !this.replayable) throw new Error('ReplayBody: not replayable');
    this.views++;
    if (this.current) this.current.detached = true;
    const v = new ReplayView(this);
    this.current = v;
    return v;
  }

  /** No more attempts will be made: stop keeping chunks. */
  commit(): void {
    this.committed = true;
    const v = this.current;
    if (v && v.live) {
      this.chunks = [];
      v.pos = 0;
    }
  }

  /** The exchange is over: drop the rest of the downstream body. */
  release(err?: Error): void {
    if (this.released) return;
    this.released = true;
    this.chunks = [];
    if (this.current) this.current.detached = true;
    this.current = null;
    if (this.started && !this.ended && this.error === null) this.source.destroy(err);
  }

  /** Called by a view that caught up with what was kept. */
  goLive(v: ReplayView): void {
    if (v !== this.current) return;
    if (!this.started) {
      this.started = true;
      this.source.start(this);
      return;
    }
    if (this.sourcePaused) {
      this.sourcePaused = false;
      this.source.resume();
    }
  }

  resumeSource(v: ReplayView): void {
    if (v !== this.current || !this.sourcePaused) return;
    this.sourcePaused = false;
    this.source.resume();
  }

  // ---- BodySink: the downstream body ----

  onData(chunk: Buffer): boolean {
    if (this.released) return false;
    const v = this.current;
    const live = v !== null && v.live && !v.detached;
    if (!this.overflowed && !this.committed) {
      this.size += chunk.length;
      if (this.size > this.limit) this.overflowed = true;
    }
    const keep = !(this.overflowed || this.committed) || !live;
    if (keep) {
      this.chunks.push(chunk);
      if (live) v.pos = this.chunks.length;
    } else if (this.chunks.length > 0 && live) {
      this.chunks = [];
      v.pos = 0;
    }
    if (!live) {
      this.sourcePaused = true;
      return false;
    }
    const ok = v.sink!.onData(chunk);
    if (!ok) this.sourcePaused = true;
    return ok;
  }

  onEnd(trailers: HeaderList | null): void {
    this.ended = true;
    this.trailers = trailers;
    const v = this.current;
    if (v && v.live && !v.detached) v.finish();
  }

  onError(err: Error): void {
    this.error = err;
    const v = this.current;
    if (v && v.live && !v.detached) v.finish();
  }
}

class ReplayView implements BodySource {
  private readonly owner: ReplayBody;
  sink: BodySink | null = null;
  pos = 0;
  live = false;
  detached = false;
  private paused = false;
  private done = false;

  constructor(owner: ReplayBody) {
    this.owner = owner;
  }

  get contentLength(): number | null {
    return this.owner.contentLength;
  }

  start(sink: BodySink): void {
    if (this.sink !== null) return;
    this.sink = sink;
    this.pump();
  }

  private pump(): void {
    const sink = this.sink!;
    while (!this.detached && this.pos < this.owner.chunks.length) {
      const ok = sink.onData(this.owner.chunks[this.pos++]!);
      if (!ok) {
        this.paused = true;
        return;
      }
    }
    if (this.detached) return;
    this.live = true;
    if (this.owner.ended || this.owner.error) this.finish();
    else this.owner.goLive(this);
  }

  finish(): void {
    if (this.done || this.detached) return;
    this.done = true;
    const o = this.owner;
    if (o.error) this.sink!.onError(o.error);
    else this.sink!.onEnd(o.trailers);
  }

  resume(): void {
    if (this.detached || this.done || this.sink === null) return;
    if (!this.live) {
      if (!this.paused) return;
      this.paused = false;
      this.pump();
      return;
    }
    this.owner.resumeSource(this);
  }

  destroy(): void {
    this.detached = true;
  }
}
