// A minimal in-memory CaStore for tests of the CA and the identity routes.
import type { KeyValue } from '../store/types.ts';
import type { CaStore } from './ca.ts';

export function fakeCaStore(): CaStore & { readonly data: Map<string, KeyValue> } {
  const data = new Map<string, KeyValue>();
  let rev = 0;
  return {
    data,
    get: async (key) => data.get(key) ?? null,
    list: async (prefix) => ({ items: [...data.values()].filter((kv) => kv.key.startsWith(prefix)).sort((a, b) => a.key.localeCompare(b.key)), revision: rev }),
    put: async (key, value, opts = {}) => {
      const cur = data.get(key) ?? null;
      if (opts.expectModRevision !== undefined && (cur?.modRevision ?? 0) !== opts.expectModRevision) return { ok: false, reason: 'conflict', current: cur };
      rev++;
      const kv: KeyValue = { key, value, createRevision: cur?.createRevision ?? rev, modRevision: rev, version: (cur?.version ?? 0) + 1 };
      data.set(key, kv);
      return { ok: true, revision: rev, kv };
    },
    delete: async (key) => {
      const cur = data.get(key);
      if (!cur) return { ok: false, reason: 'not_found', current: null };
      data.delete(key);
      return { ok: true, revision: ++rev, prev: cur };
    },
  };
}
