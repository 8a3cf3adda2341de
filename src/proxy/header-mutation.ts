// Envoy's headers_to_add / headers_to_remove on a flat HeaderList, in place.
// Within one mutation removals run first, then additions in order.
import type { HeaderAppendAction, HeaderMutation } from './config/types.ts';
import { getHeader, removeHeader, setHeader, type HeaderList } from './http/exchange.ts';

export function applyHeaderMutation(headers: HeaderList, mutation: HeaderMutation): HeaderList {
  for (const name of mutation.remove) removeHeader(headers, name);
  for (const a of mutation.add) {
    const action: HeaderAppendAction = a.action ?? (a.append ? 'append_if_exists_or_add' : 'overwrite_if_exists_or_add');
    switch (action) {
      case 'append_if_exists_or_add':
        headers.push(a.name, a.value);
        break;
      case 'overwrite_if_exists_or_add':
        setHeader(headers, a.name, a.value);
        break;
      case 'add_if_absent':
        if (getHeader(headers, a.name) === undefined) headers.push(a.name, a.value);
        break;
      case 'overwrite_if_exists':
        if (getHeader(headers, a.name) !== undefined) setHeader(headers, a.name, a.value);
        break;
    }
  }
  return headers;
}

/** Apply several levels in order (route, virtual host, route configuration). */
export function applyHeaderMutations(headers: HeaderList, mutations: readonly HeaderMutation[]): HeaderList {
  for (const m of mutations) applyHeaderMutation(headers, m);
  return headers;
}
