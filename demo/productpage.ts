// productpage (HTTP): the front page. Calls details (Python, HTTP) and
// reviews (HTTP; v1/v2/v3 chosen by the mesh) through its sidecar, passing
// on `x-user-group` so header-based steering works end to end.
import http from 'node:http';
import { appPort, meshGet, propagated, sendJson, serve } from './mesh-http.ts';

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/health') return sendJson(res, 200, { ok: true });
  if (url !== '/' && !url.startsWith('/productpage')) return sendJson(res, 404, { error: 'not found', path: url });
  const headers = propagated(req.headers);
  const productId = 1 + Math.floor(Math.random() * 3);
  Promise.all([
    meshGet(`http://details:9080/details/${productId}`, headers),
    meshGet(`http://reviews:9080/reviews/${productId}`, headers),
  ]).then(([details, reviews]) => {
    const ok = details.status === 200 && reviews.status === 200;
    // A page with a missing part is still a page (200), as bookinfo does;
    // the parts say what failed so the mesh's effect is visible.
    sendJson(res, 200, {
      productId,
      served_by: `productpage (${process.env.TRELLIS_WORKLOAD ?? 'local'})`,
      // The ingress gateway's SPIFFE identity when it called over mTLS.
      ...(typeof req.headers['x-trellis-peer-identity'] === 'string' ? { caller: req.headers['x-trellis-peer-identity'] } : {}),
      complete: ok,
      details: { status: details.status, body: details.body, proxyError: details.headers['x-trellis-error'] },
      reviews: { status: reviews.status, body: reviews.body, proxyError: reviews.headers['x-trellis-error'] },
    });
  }).catch((err: Error) => sendJson(res, 500, { error: err.message }));
});

serve(server, 'productpage', appPort());
