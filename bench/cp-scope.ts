// The synthetic call graph of `npm run bench:control-plane -- --scoped K`:
// workload group w (service svc-w) calls the K services after it. Shared by
// the control plane's Sidecars (cp-server.ts) and the clients' EDS
// subscriptions (cp-clients.ts).
export function scopedDeps(w: number, services: number, k: number): number[] {
  return Array.from({ length: Math.min(k, services - 1) }, (_, j) => (w + 1 + j) % services);
}
