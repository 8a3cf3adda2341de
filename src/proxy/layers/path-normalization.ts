// The HttpConnectionManager's path normalization as a layer: the request's
// path is rewritten before RBAC and the router see it, so the backend is sent
// the path that was authorized (http/path-normalize.ts has the rules). A path
// that cannot be normalized is a 400; with unescape-and-redirect, a path
// with escaped slashes gets a 307 to its normalized form.
import type { Dispatch, Layer } from '../http/exchange.ts';
import { ProxyError } from '../errors.ts';
import { normalizeRequestPath, type PathNormalization } from '../http/path-normalize.ts';

export function pathNormalizationLayer(opts: PathNormalization): Layer {
  return function pathNormalization(next: Dispatch): Dispatch {
    return function pathNormalizationDispatch(req, handler) {
      const r = normalizeRequestPath(req.head.path, opts);
      if (r.kind === 'ok') {
        req.head.path = r.path;
        next(req, handler);
      } else if (r.kind === 'reject') {
        handler.onError(new ProxyError('BAD_REQUEST', r.reason));
      } else {
        handler.onError(new ProxyError('PATH_REDIRECT', undefined, { headers: ['location', r.path] }));
      }
    };
  };
}
