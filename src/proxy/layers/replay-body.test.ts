import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplayBody } from './replay-body.ts';
import type { BodySink, BodySource, HeaderList } from '../http/exchange.ts';

/** A downstream body whose chunks the test pushes by hand. */
function source(contentLength: number | null = null) {
  let sink: BodySink | null = null;
  const s = {
    starts: 0,
    resumes: 0,
    destroyed: false,
    paused: false,
    push(chunk: string): boolean {
      const ok = sink!.onData(Buffer.from(chunk));
      if (!ok) s.paused = true;
      return ok;
    },
    end(trailers: HeaderList | null = null) {
      sink!.onEnd(trailers);
    },
  };
  const body: BodySource = {
    contentLength,
    start(k) {
      s.starts++;
      sink = k;
    },
    resume() {
      s.resumes++;
      s.paused = false;
    },
    destroy() {
      s.destroyed = true;
    },
  };
  return { s, body };
}

function collect(opts: { pauseAfter?: number } = {}) {
  const got: string[] = [];
  let ended: HeaderList | null | undefined;
  const sink: BodySink = {
    onData(c) {
      got.push(c.toString());
      return got.length !== opts.pauseAfter;
    },
    onEnd(t) {
      ended = t;
    },
    onError() {},
  };
  return { sink, got, ended: () => ended };
}

test('replay: the second view gets what the first saw, then the live rest', () => {
  const { s, body } = source();
  const rb = new ReplayBody(body, 100);
  const v1 = rb.view();
  const c1 = collect();
  v1.start(c1.sink);
  assert.equal(s.starts, 1);
  s.push('ab');
  s.push('cd');
  assert.deepEqual(c1.got, ['ab', 'cd']);
  v1.destroy();
  assert.equal(s.destroyed, false, 'a view going away does not destroy the downstream body');
  const v2 = rb.view();
  const c2 = collect();
  v2.start(c2.sink);
  assert.deepEqual(c2.got, ['ab', 'cd']);
  s.push('ef');
  s.end(['x-t', '1']);
  assert.deepEqual(c2.got, ['ab', 'cd', 'ef']);
  assert.deepEqual(c2.ended(), ['x-t', '1']);
  assert.deepEqual(c1.got, ['ab', 'cd'], 'the detached view saw nothing more');
  // A third view of a finished body replays it all and ends.
  const c3 = collect();
  rb.view().start(c3.sink);
  assert.deepEqual(c3.got, ['ab', 'cd', 'ef']);
  assert.deepEqual(c3.ended(), ['x-t', '1']);
});

test('replay: backpressure of the replaying view is honoured; the source waits until it catches up', () => {
  const { s, body } = source();
  const rb = new ReplayBody(body, 100);
  const v1 = rb.view();
  v1.start(collect().sink);
  s.push('a');
  s.push('b');
  s.push('c');
  v1.destroy();
  // Between attempts the source is paused on its next chunk.
  assert.equal(s.push('d'), false);
  const v2 = rb.view();
  const c2 = collect({ pauseAfter: 2 });
  v2.start(c2.sink);
  assert.deepEqual(c2.got, ['a', 'b']);
  assert.equal(s.resumes, 0);
  v2.resume();
  assert.deepEqual(c2.got, ['a', 'b', 'c', 'd']);
  assert.equal(s.resumes, 1, 'caught up: the source is resumed');
});

test('replay: past the bound nothing more is kept and no further view can be made', () => {
  const { s, body } = source();
  const rb = new ReplayBody(body, 4);
  const v1 = rb.view();
  const c1 = collect();
  v1.start(c1.sink);
  s.push('abc');
  assert.equal(rb.replayable, true);
  s.push('defg');
  assert.equal(rb.replayable, false);
  assert.deepEqual(c1.got, ['abc', 'defg'], 'the live view still gets everything');
  assert.equal(rb.chunks.length, 0, 'the kept chunks were dropped');
  assert.throws(() => rb.view());
  assert.equal(new ReplayBody(source(10).body, 4).replayable, false, 'a declared length over the bound is never replayable');
  rb.release();
  assert.equal(s.destroyed, true, 'release destroys an unfinished downstream body');
});
