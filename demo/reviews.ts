// reviews (HTTP): three versions of one service, selected by REVIEWS_VERSION.
//   v1: no stars, fast.
//   v2: stars from ratings (gRPC), slow: ~25% of answers take 400-700 ms
//       (try a route timeout, or watch p99 on the dashboard).
//   v3: stars from ratings, flaky: ~20% of answers are 503 (try retries
//       and outlier detection).
// ratings is dialled at TRELLIS_UPSTREAM_RATINGS_9090, the sidecar's local
// listener for that upstream.
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { appPort, sendJson, serve } from './mesh-http.ts';
import { ratingsClientCtor } from './ratings.ts';

const version = process.env.REVIEWS_VERSION ?? 'v1';
const ratingsAddr = process.env.TRELLIS_UPSTREAM_RATINGS_9090;
const Ratings = ratingsClientCtor();
const ratings = ratingsAddr ? new Ratings(ratingsAddr, grpc.credentials.createInsecure()) : undefined;

function getRating(productId: number): Promise<{ stars?: number; served_by?: string; error?: string }> {
  if (!ratings) return Promise.resolve({ error: 'no ratings upstream declared' });
  return new Promise((resolve) => {
    ratings.GetRating({ product_id: productId }, { deadline: Date.now() + 2000 }, (err: grpc.ServiceError | null, reply?: { stars: number; served_by: string }) => {
      if (err) resolve({ error: `${grpc.status[err.code] ?? err.code}: ${err.details}` });
      else resolve({ stars: reply?.stars, served_by: reply?.served_by });
    });
  });
}

const server = http.createServer((req, res) => {
  const m = /^\/reviews\/(\d+)/.exec(req.url ?? '');
  if (!m) return sendJson(res, 404, { error: 'not found', path: req.url });
  const productId = Number(m[1]);
  const answer = async (): Promise<void> => {
    if (version === 'v3' && Math.random() < 0.2) return sendJson(res, 503, { error: 'reviews v3 is flaky on purpose', version });
    if (version === 'v2' && Math.random() < 0.25) await new Promise((r) => setTimeout(r, 400 + Math.random() * 300));
    const reviews = [
      { reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare.' },
      { reviewer: 'Reviewer2', text: 'Absolutely fun and entertaining.' },
    ];
    const body: Record<string, unknown> = { productId, version, served_by: `reviews ${version} (${process.env.TRELLIS_WORKLOAD ?? 'local'})`, reviews };
    // Set by the inbound sidecar for calls that arrived over mTLS (and stripped from anything else).
    const caller = req.headers['x-trellis-peer-identity'];
    if (typeof caller === 'string') body.caller = caller;
    if (version !== 'v1') body.rating = await getRating(productId);
    sendJson(res, 200, body);
  };
  answer().catch((err: Error) => sendJson(res, 500, { error: err.message }));
});

serve(server, `reviews ${version}`, appPort());
process.once('exit', () => ratings?.close());
