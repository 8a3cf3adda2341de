// Which workloads have a sidecar connected right now, from the xDS server's
// connect/disconnect events: the input of global rate limits (a service's
// rate is split among its workloads whose sidecars are connected,
// translate/policies.ts). Counted per stream, so a proxy reconnecting on a
// new stream before the old one closes is still one workload.
import type { XdsServer } from '../xds/server.ts';
import { proxyNodeOf } from './snapshots.ts';

export interface ConnectedSidecars {
  /** "namespace/workload" of every workload with at least one connected sidecar stream. */
  current(): ReadonlySet<string>;
  stop(): void;
}

/** `onChange` runs (debounced by the caller's own scheduling) when the set changes. */
export function trackConnectedSidecars(xds: XdsServer, onChange: () => void): ConnectedSidecars {
  const streams = new Map<number, string>();
  let set: ReadonlySet<string> = new Set();
  const recompute = (): void => {
    const next = new Set(streams.values());
    if (next.size === set.size && [...next].every((k) => set.has(k))) return;
    set = next;
    onChange();
  };
  const off = xds.on((e) => {
    if (e.kind === 'connect') {
      const n = proxyNodeOf(e.node);
      if (n.kind !== 'sidecar' || !n.workload) return;
      streams.set(e.streamId, `${n.namespace}/${n.workload}`);
      recompute();
    } else if (e.kind === 'disconnect') {
      if (streams.delete(e.streamId)) recompute();
    }
  });
  return { current: () => set, stop: off };
}
