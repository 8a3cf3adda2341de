// The ADS server: xDS v3 state of the world over one gRPC stream per proxy
// (envoy.service.discovery.v3.AggregatedDiscoveryService), serving snapshots
// from a SnapshotSource (cache.ts) to Trellis proxies and proxyless gRPC
// clients alike.
//
// Per stream and type URL it keeps what the client subscribed to, what was
// last sent (version, nonce, a fingerprint of the exact resources) and what
// the client said about it. Rules (see docs/xds.md):
// - The `node` arrives only on a stream's first request; it is remembered.
// - LDS and CDS subscriptions with no names (or "*") are wildcards.
// - A Listener or Cluster response carries every subscribed resource of its
//   type (leaving one out deletes it). A RouteConfiguration or
//   ClusterLoadAssignment response carries only the subscribed resources that
//   changed since the last response on the stream (xDS state of the world:
//   absent RDS/EDS resources keep their value), so an endpoint change sends
//   one ClusterLoadAssignment, not all of them. A new stream, a subscription
//   change or a request without a nonce gets every subscribed resource.
// - A request with the latest nonce is an ACK, or a NACK when it has
//   error_detail; clients fill version_info differently, so only the nonce
//   counts. A request with an older nonce is stale and ignored.
// - Something is sent when a type's subscribed resources differ from what was
//   last sent (so an endpoint-only change pushes only EDS), on a stream's
//   first request for a type, and when the subscription changes. A NACKed
//   version is not sent again; the next change is.
// - A client that subscribes before its snapshot exists is answered when the
//   snapshot lands.
// - After a change, streams are pushed in slices of a few milliseconds, so
//   the first proxies' pushes are on the wire (and their ACKs coming back)
//   while the rest are computed; and no more than `pushBudgetBytes` of
//   responses wait in memory for their sockets at once (a full config to
//   thousands of proxies would otherwise be encoded all at once). A stream
//   whose own buffer is full waits for 'drain', then gets the latest.
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { adsMethod, decodeRequest, encodeResponse, type DecodedRequest } from './ads-method.ts';
import type { SnapshotSource, XdsNode } from './cache.ts';
import { TypeUrl } from './protos.ts';
import type { ResourceTypeUrl } from './protos.ts';
import type { Snapshot, SnapshotResource, SnapshotTypeResources } from './snapshot.ts';
import type { NameList } from './resource-names.ts';
import { changedSince } from './snapshot-diff.ts';
import { deltaAdsMethod } from './delta-method.ts';
import { serveDeltaStream, type DeltaHost, type DeltaStream } from './delta-stream.ts';

export type SyncState = 'synced' | 'stale' | 'rejected';

export interface NackInfo {
  readonly version: string;
  readonly nonce: string;
  readonly message: string;
  readonly at: string;
}

export interface TypeSyncStatus {
  readonly typeUrl: string;
  /** "*" for a wildcard subscription. */
  readonly subscribed: readonly string[] | '*';
  readonly sentVersion: string | null;
  readonly ackedVersion: string | null;
  /** The version the current snapshot holds for this type (null: no snapshot yet). */
  readonly latestVersion: string | null;
  readonly nacked: NackInfo | null;
}

export interface ProxyStatus {
  readonly nodeId: string;
  readonly cluster: string;
  readonly locality: XdsNode['locality'];
  readonly userAgent: string;
  readonly connectedAt: string;
  readonly streams: number;
  /** The snapshot's label (e.g. store revision), or null when the proxy has none. */
  readonly snapshotLabel: string | null;
  /** By short type name: "Listener", "RouteConfiguration", "Cluster", ... */
  readonly perType: Readonly<Record<string, TypeSyncStatus>>;
  readonly status: SyncState;
}

/** grpc-js `getPeer()` ("1.2.3.4:5", "[::1]:5", "ipv4:...") -> the host. */
function peerHost(call: { getPeer(): string }): string {
  let p: string;
  try {
    p = call.getPeer();
  } catch {
    return '';
  }
  p = p.replace(/^ipv[46]:/, '');
  const m = /^\[([^\]]+)\]:\d+$/.exec(p) ?? /^([^:]+):\d+$/.exec(p);
  const host = m ? m[1]! : p;
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}

export type XdsServerEvent =
  | { readonly kind: 'connect'; readonly streamId: number; readonly node: XdsNode; /** The stream's remote address (host only), '' when unknown. */ readonly peer: string }
  | { readonly kind: 'disconnect'; readonly streamId: number; readonly nodeId: string; readonly reason: string }
  | { readonly kind: 'push'; readonly streamId: number; readonly nodeId: string; readonly typeUrl: string; readonly version: string; readonly nonce: string; readonly resources: readonly string[]; readonly removed?: readonly string[] }
  | { readonly kind: 'ack'; readonly streamId: number; readonly nodeId: string; readonly typeUrl: string; readonly version: string; readonly nonce: string }
  | { readonly kind: 'nack'; readonly streamId: number; readonly nodeId: string; readonly typeUrl: string; readonly version: string; readonly nonce: string; readonly message: string }
  | { readonly kind: 'stream_error'; readonly streamId: number; readonly message: string };

/** Who is on the other end of a stream: the URI SANs of a verified client
 * certificate (mutual TLS), or none (a plaintext or server-only TLS port). */
export interface XdsPeer {
  readonly uriSans: readonly string[];
  readonly secure: boolean;
}

export interface XdsServerOptions {
  readonly source: SnapshotSource;
  /** Checked on a stream's first request: an error message refuses the
   * stream (PERMISSION_DENIED), so a proxy gets only config it may have. */
  readonly authorize?: (node: XdsNode, peer: XdsPeer) => string | undefined;
  /** Sent as control_plane.identifier. */
  readonly controlPlaneId?: string;
  /** grpc-js server options (keepalive etc.). */
  readonly grpcOptions?: grpc.ServerOptions;
  /** Responses written but not yet taken by their sockets, at most (default
   * 64 MiB); over it, pushes wait. One response may go over it. */
  readonly pushBudgetBytes?: number;
  /** A write not taken by its socket for this long stops counting against
   * the budget (default 1000 ms; see STALL_MS). */
  readonly pushStallMs?: number;
}

export interface PushQueueStats {
  /** Bytes written and not yet taken by their sockets, as counted against the budget. */
  readonly inflightBytes: number;
  /** Streams with a push waiting for its slice or for budget. */
  readonly waitingStreams: number;
}

export interface XdsServer {
  /** Binds and serves; resolves with the bound port. */
  listen(host: string, port: number, credentials?: grpc.ServerCredentials): Promise<number>;
  /** One entry per connected proxy (node id), newest stream's view. */
  status(): ProxyStatus[];
  /** Subscribes to protocol events; returns the unsubscribe function. */
  on(listener: (event: XdsServerEvent) => void): () => void;
  /** The push queue now. */
  pushQueue(): PushQueueStats;
  /** Stops serving; open streams are cancelled after `graceMs` (default 0). */
  close(opts?: { graceMs?: number }): Promise<void>;
}

interface TypeState {
  names: ReadonlySet<string> | '*';
  /** The resource_names that set `names` (interned, resource-names.ts): an
   * ACK repeating their bytes decodes to this same object. */
  nameList: NameList | null;
  sentVersion: string | null;
  sentNonce: string | null;
  sentFingerprint: string | null;
  /** The snapshot's resources of this type as of the last response. */
  sentTypeRes: SnapshotTypeResources | null;
  ackedVersion: string | null;
  nacked: NackInfo | null;
}

/** A stream the push slices can flush: state of the world or delta. */
interface Pushable {
  readonly call: grpc.ServerDuplexStream<Buffer, Buffer>;
  blocked: boolean;
  readonly flights: Set<object>;
  flush(): void;
}

interface StreamState extends Pushable {
  readonly id: number;
  readonly call: grpc.ServerDuplexStream<Buffer, Buffer>;
  readonly connectedAt: Date;
  node: XdsNode | undefined;
  readonly types: Map<string, TypeState>;
  nonces: number;
  closed: boolean;
  /** The last write filled the stream's buffer: hold pushes until 'drain', then send the latest. */
  blocked: boolean;
  /** Types to answer at the next flush, and whether each must be answered
   * even if unchanged (a first request, a subscription change). */
  due: Map<string, boolean>;
  /** Writes on this stream that have not completed. */
  flights: Set<Flight>;
  flush(): void;
}

/** A response written and not yet taken by the stream's socket. */
interface Flight {
  readonly bytes: number;
  readonly at: number;
  /** Still counted against the push budget. */
  counted: boolean;
}

const WILDCARD_TYPES = new Set<string>([TypeUrl.listener, TypeUrl.cluster]);
/** Types whose SotW responses need only the changed resources (absent ones
 * keep their value). Listener and Cluster responses must always be complete,
 * even when subscribed by name (grpc-js-xds names its clusters): leaving one
 * out deletes it. */
const INCREMENTAL_TYPES = new Set<string>([TypeUrl.route, TypeUrl.endpoint]);
/** Push order when several types change at once: make before break. */
const PUSH_ORDER: readonly string[] = [TypeUrl.secret, TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.listener, TypeUrl.route];
const KNOWN_TYPES = new Set<string>(Object.values(TypeUrl));

/** "type.googleapis.com/envoy.config.cluster.v3.Cluster" -> "Cluster". */
export const shortType = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
/** How long one slice of pushes may hold the event loop. */
const SLICE_MS = 5;
/** A write not taken by its socket for this long is a slow reader's, parked
 * in its own buffers: it stops counting against the budget, so one stalled
 * proxy cannot hold up the pushes to all the others. */
const STALL_MS = 1000;
const PUSH_BUDGET_BYTES = 64 * 1024 * 1024;

export function createXdsServer(opts: XdsServerOptions): XdsServer {
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    // Notice proxies that vanished without closing (a partition, a killed VM).
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    ...opts.grpcOptions,
  });
  const streams = new Map<number, StreamState>();
  const listeners = new Set<(e: XdsServerEvent) => void>();
  let nextStreamId = 1;
  let closed = false;
  const budget = opts.pushBudgetBytes ?? PUSH_BUDGET_BYTES;
  const stallMs = opts.pushStallMs ?? STALL_MS;
  /** Bytes of counted flights. */
  let inflight = 0;
  /** Counted flights, oldest first (uncounted ones are dropped lazily), and how many are counted. */
  let flights: Flight[] = [];
  let countedFlights = 0;
  /** Streams with due types waiting for a slice (or for budget). */
  const pending = new Set<Pushable>();
  /** Incremental (delta) streams (delta-stream.ts). */
  const deltaStreams = new Map<number, DeltaStream>();
  let scheduled = false;
  let stallTimer: NodeJS.Timeout | undefined;

  function uncount(f: Flight): void {
    if (!f.counted) return;
    f.counted = false;
    countedFlights--;
    inflight -= f.bytes;
    if (pending.size > 0 && inflight < budget) wait(pending.values().next().value!);
  }

  /** Over budget: stop counting flights stalled for STALL_MS, and check again later. */
  function overBudget(): boolean {
    if (inflight < budget) return false;
    const cutoff = performance.now() - stallMs;
    let i = 0;
    while (i < flights.length && (!flights[i]!.counted || flights[i]!.at <= cutoff)) {
      const f = flights[i++]!;
      if (f.counted) {
        f.counted = false;
        countedFlights--;
        inflight -= f.bytes;
      }
    }
    if (i > 0) flights = flights.slice(i);
    if (inflight < budget) return false;
    if (stallTimer === undefined && !closed) {
      const oldest = flights.find((f) => f.counted)?.at ?? performance.now();
      stallTimer = setTimeout(() => {
        stallTimer = undefined;
        if (pending.size > 0) wait(pending.values().next().value!);
      }, Math.max(1, oldest + stallMs - performance.now()));
      stallTimer.unref();
    }
    return true;
  }

  const emit = (e: XdsServerEvent): void => {
    for (const l of [...listeners]) l(e);
  };

  /** The resources of `typeUrl` a stream should hold now, or undefined without a snapshot. */
  function desired(snapshot: Snapshot | undefined, typeUrl: string, ts: TypeState): { version: string; resources: SnapshotResource[]; fingerprint: string } | undefined {
    if (snapshot === undefined || !KNOWN_TYPES.has(typeUrl)) return undefined;
    const typeRes = snapshot.types.get(typeUrl as ResourceTypeUrl);
    if (typeRes === undefined) return undefined;
    const resources: SnapshotResource[] = [];
    if (ts.names === '*') {
      resources.push(...typeRes.resources.values());
    } else {
      for (const name of ts.nameList?.sorted() ?? [...ts.names].sort()) {
        const r = typeRes.resources.get(name);
        if (r !== undefined) resources.push(r);
      }
    }
    // A wildcard holds the whole type: its content version is the fingerprint.
    const fingerprint =
      ts.names === '*'
        ? `*${typeRes.version}`
        : createHash('sha256')
            .update(resources.map((r) => `${r.name}\u0000${r.hash}`).join('\n'))
            .digest('hex')
            .slice(0, 16);
    return { version: typeRes.version, resources, fingerprint };
  }

  /** Named subscriptions (RDS, EDS) whose resources changed since `sent`.
   * The resource maps are shared by every proxy of a namespace, so the diff
   * of a pair is computed once (changedSince) and each stream intersects it
   * with its subscription: O(changed), not O(subscribed), per stream. */
  function changedNamed(typeRes: SnapshotTypeResources, names: ReadonlySet<string>, sent: SnapshotTypeResources | null): SnapshotResource[] {
    const out: SnapshotResource[] = [];
    const all = sent === null ? undefined : changedSince(typeRes, sent);
    if (all !== undefined && all.length <= names.size) {
      for (const r of all) if (names.has(r.name)) out.push(r);
      return out;
    }
    for (const name of names) {
      const r = typeRes.resources.get(name);
      if (r !== undefined && sent?.resources.get(name)?.hash !== r.hash) out.push(r);
    }
    return out;
  }

  /** Asks for `typeUrl` to be answered on `st`: now if the budget allows,
   * else in a later slice. */
  function due(st: StreamState, typeUrl: string, force: boolean): void {
    st.due.set(typeUrl, force || st.due.get(typeUrl) === true);
    if (st.blocked) return; // 'drain' flushes
    if (overBudget()) wait(st);
    else flush(st);
  }

  function wait(st: Pushable): void {
    pending.add(st);
    if (scheduled || closed) return;
    scheduled = true;
    setImmediate(runPending);
  }

  /** One slice: flush waiting streams until the slice is used up or the
   * budget is (then a write completing resumes). */
  function runPending(): void {
    scheduled = false;
    const t0 = performance.now();
    for (const st of pending) {
      if (closed || overBudget()) return; // resumed by a write completing, or by the stall timer
      pending.delete(st);
      st.flush();
      if (performance.now() - t0 >= SLICE_MS) break;
    }
    if (pending.size > 0) wait(pending.values().next().value!);
  }

  /** Answers the stream's due types, in push order, from one snapshot. */
  function flush(st: StreamState): void {
    if (st.closed || st.node === undefined || st.blocked || st.due.size === 0) return;
    pending.delete(st);
    const dueNow = st.due;
    st.due = new Map();
    const snapshot = opts.source.snapshotFor(st.node);
    for (const typeUrl of pushOrder(dueNow.keys())) {
      if (st.blocked) st.due.set(typeUrl, dueNow.get(typeUrl)! || st.due.get(typeUrl) === true);
      else respond(st, typeUrl, dueNow.get(typeUrl)!, snapshot);
    }
  }

  function respond(st: StreamState, typeUrl: string, force: boolean, snapshot: Snapshot | undefined): void {
    const ts = st.types.get(typeUrl);
    if (ts === undefined) return;
    const typeRes = snapshot?.types.get(typeUrl as ResourceTypeUrl);
    // Nothing changed for this type since the last response: the common case
    // for every type but the one that changed, checked in O(1).
    if (!force && typeRes !== undefined && typeRes === ts.sentTypeRes) return;
    // RDS/EDS after the first response: only what changed, found without
    // hashing the whole subscription (thousands of EDS names per proxy).
    if (!force && INCREMENTAL_TYPES.has(typeUrl) && ts.names !== '*' && ts.sentTypeRes !== null && typeRes !== undefined) {
      const changed = changedNamed(typeRes, ts.names, ts.sentTypeRes);
      if (changed.length === 0) {
        ts.sentTypeRes = typeRes;
        return;
      }
      send(st, ts, typeUrl, typeRes.version, changed, null, typeRes);
      return;
    }
    if (!force && ts.names === '*' && typeRes !== undefined && ts.sentFingerprint === `*${typeRes.version}`) {
      ts.sentTypeRes = typeRes;
      return;
    }
    const want = desired(snapshot, typeUrl, ts);
    if (want === undefined) return; // answered when a snapshot lands
    if (!force && want.fingerprint === ts.sentFingerprint) {
      ts.sentTypeRes = typeRes ?? null;
      return;
    }
    send(st, ts, typeUrl, want.version, want.resources, want.fingerprint, typeRes ?? null);
  }

  function send(st: StreamState, ts: TypeState, typeUrl: string, version: string, resources: SnapshotResource[], fingerprint: string | null, typeRes: SnapshotTypeResources | null): void {
    if (st.node === undefined) return;
    const nonce = `${st.id}-${++st.nonces}`;
    const body = encodeResponse({
      versionInfo: version,
      resources: resources.map((r) => r.any),
      typeUrl,
      nonce,
      ...(opts.controlPlaneId === undefined ? {} : { controlPlane: opts.controlPlaneId }),
    });
    ts.sentVersion = version;
    ts.sentNonce = nonce;
    ts.sentFingerprint = fingerprint;
    ts.sentTypeRes = typeRes;
    writeCounted(st, body);
    emit({ kind: 'push', streamId: st.id, nodeId: st.node.id, typeUrl, version, nonce, resources: resources.map((r) => r.name) });
  }

  /** Writes a response, counted against the push budget until its socket takes it. */
  function writeCounted(st: Pushable, body: Buffer): void {
    const flight: Flight = { bytes: body.length, at: performance.now(), counted: true };
    inflight += flight.bytes;
    countedFlights++;
    flights.push(flight);
    if (flights.length > 4096 && flights.length > 4 * countedFlights) flights = flights.filter((f) => f.counted);
    st.flights.add(flight);
    const written = (): void => {
      st.flights.delete(flight);
      uncount(flight);
    };
    if (!st.call.write(body, written)) st.blocked = true;
  }

  function onRequest(st: StreamState, req: DecodedRequest): void {
    if (st.node === undefined) {
      if (req.node === undefined || req.node.id === '') {
        st.call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'the first DiscoveryRequest on a stream must carry node.id' });
        st.call.end();
        return;
      }
      const refused = opts.authorize?.(req.node, peerOf(st.call));
      if (refused !== undefined) {
        emit({ kind: 'stream_error', streamId: st.id, message: `node ${req.node.id} refused: ${refused}` });
        st.call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: refused });
        st.call.end();
        return;
      }
      st.node = req.node;
      emit({ kind: 'connect', streamId: st.id, node: req.node, peer: peerHost(st.call) });
    }
    const typeUrl = req.typeUrl;
    if (typeUrl === '') return;
    let ts = st.types.get(typeUrl);
    const first = ts === undefined;
    if (ts === undefined) {
      ts = { names: '*', nameList: null, sentVersion: null, sentNonce: null, sentFingerprint: null, sentTypeRes: null, ackedVersion: null, nacked: null };
      st.types.set(typeUrl, ts);
    }
    if (req.responseNonce !== '') {
      if (req.responseNonce !== ts.sentNonce) return; // stale: a newer response is on its way
      const nodeId = st.node.id;
      const version = ts.sentVersion ?? '';
      if (req.errorDetail !== undefined) {
        if (ts.nacked?.nonce !== req.responseNonce) {
          ts.nacked = { version, nonce: req.responseNonce, message: req.errorDetail.message, at: new Date().toISOString() };
          emit({ kind: 'nack', streamId: st.id, nodeId, typeUrl, version, nonce: req.responseNonce, message: req.errorDetail.message });
        }
      } else if (ts.nacked?.nonce !== req.responseNonce) {
        // An ACK. (A request without error_detail that carries the nonce of a
        // NACKed response is a subscription change, not a change of mind.)
        const news = ts.ackedVersion !== version || ts.nacked !== null;
        ts.ackedVersion = version;
        ts.nacked = null;
        if (news) emit({ kind: 'ack', streamId: st.id, nodeId, typeUrl, version, nonce: req.responseNonce });
      }
    }
    const wildcard = req.names.wildcard || (req.resourceNames.length === 0 && WILDCARD_TYPES.has(typeUrl));
    // ACKs repeat the whole subscription (thousands of EDS names): the same
    // bytes decode to the same interned list, recognised by identity.
    const changed = wildcard ? ts.names !== '*' : !sameList(ts, req.names);
    // The list as last sent is what the next ACK's bytes are matched against.
    if (changed || !wildcard) {
      ts.names = wildcard ? '*' : req.names.set;
      ts.nameList = wildcard ? null : req.names;
    }
    // The first request of a type, or one without a nonce (a reconnecting
    // client telling us what it has), always gets an answer.
    due(st, typeUrl, first || req.responseNonce === '' || changed);
  }

  function onSnapshotChange(): void {
    for (const st of streams.values()) {
      if (st.closed || st.node === undefined) continue;
      for (const typeUrl of st.types.keys()) if (!st.due.has(typeUrl)) st.due.set(typeUrl, false);
      if (!st.blocked) wait(st);
    }
    for (const ds of deltaStreams.values()) {
      if (ds.closed || ds.node === undefined) continue;
      ds.onSnapshotChange();
      if (!ds.blocked) wait(ds);
    }
  }
  const unsubscribe = opts.source.onChange(onSnapshotChange);

  function handleStream(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    if (closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'xDS server is shutting down' });
      return;
    }
    const st: StreamState = { id: nextStreamId++, call, connectedAt: new Date(), node: undefined, types: new Map(), nonces: 0, closed: false, blocked: false, due: new Map(), flights: new Set(), flush: () => flush(st) };
    streams.set(st.id, st);
    call.sendMetadata(new grpc.Metadata()); // lets the client see the stream is up before any response
    const finish = (reason: string): void => {
      if (st.closed) return;
      st.closed = true;
      streams.delete(st.id);
      pending.delete(st);
      for (const f of st.flights) uncount(f);
      st.flights.clear();
      if (st.node !== undefined) emit({ kind: 'disconnect', streamId: st.id, nodeId: st.node.id, reason });
    };
    call.on('data', (buf: Buffer) => {
      let req: DecodedRequest;
      try {
        req = decodeRequest(buf, knownNames(st));
      } catch (err) {
        emit({ kind: 'stream_error', streamId: st.id, message: (err as Error).message });
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `bad DiscoveryRequest: ${(err as Error).message}` });
        finish('bad request');
        return;
      }
      onRequest(st, req);
    });
    call.on('drain', () => {
      st.blocked = false;
      if (st.due.size === 0) return;
      if (overBudget()) wait(st);
      else flush(st);
    });
    call.on('end', () => {
      finish('client closed the stream');
      call.end();
    });
    call.on('cancelled', () => finish('cancelled'));
    call.on('error', (err: Error) => {
      emit({ kind: 'stream_error', streamId: st.id, message: err.message });
      finish(err.message);
    });
    call.on('close', () => finish('closed'));
  }

  const deltaHost: DeltaHost = {
    source: opts.source,
    controlPlaneId: opts.controlPlaneId,
    wildcardTypes: WILDCARD_TYPES,
    knownTypes: KNOWN_TYPES,
    pushOrder,
    emit,
    peerOf: peerHost,
    authorize: (node, call) => opts.authorize?.(node, peerOf(call)),
    schedule(ds) {
      if (ds.blocked) return; // 'drain' schedules
      if (overBudget()) wait(ds);
      else ds.flush();
    },
    write: writeCounted,
    finished(ds, reason) {
      if (ds.closed) return;
      ds.closed = true;
      deltaStreams.delete(ds.id);
      pending.delete(ds);
      for (const f of ds.flights) uncount(f as Flight);
      ds.flights.clear();
      if (ds.node !== undefined) emit({ kind: 'disconnect', streamId: ds.id, nodeId: ds.node.id, reason });
    },
  };

  function handleDeltaStream(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    if (closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'xDS server is shutting down' });
      return;
    }
    const ds = serveDeltaStream(deltaHost, nextStreamId++, call);
    deltaStreams.set(ds.id, ds);
  }

  grpcServer.addService(
    { StreamAggregatedResources: adsMethod, DeltaAggregatedResources: deltaAdsMethod },
    { StreamAggregatedResources: handleStream, DeltaAggregatedResources: handleDeltaStream },
  );

  /** For RDS/EDS sent piecemeal: does what was sent match the snapshot now? */
  function sentMatches(snapshot: Snapshot | undefined, typeUrl: string, ts: TypeState): boolean {
    const typeRes = snapshot?.types.get(typeUrl as ResourceTypeUrl);
    if (!INCREMENTAL_TYPES.has(typeUrl) || ts.names === '*' || typeRes === undefined || ts.sentTypeRes === null) return false;
    return typeRes === ts.sentTypeRes || changedNamed(typeRes, ts.names, ts.sentTypeRes).length === 0;
  }

  function typeStatus(snapshot: Snapshot | undefined, typeUrl: string, ts: TypeState): { status: TypeSyncStatus; state: SyncState } {
    const want = desired(snapshot, typeUrl, ts);
    const latestVersion = want?.version ?? null;
    let state: SyncState = 'synced';
    if (ts.nacked !== null) state = 'rejected';
    else if (want === undefined && KNOWN_TYPES.has(typeUrl)) state = 'stale';
    else if (want !== undefined && want.fingerprint !== ts.sentFingerprint && !sentMatches(snapshot, typeUrl, ts)) state = 'stale';
    else if (ts.sentVersion !== null && ts.ackedVersion !== ts.sentVersion) state = 'stale';
    return {
      state,
      status: {
        typeUrl,
        subscribed: ts.names === '*' ? '*' : [...ts.names].sort(),
        sentVersion: ts.sentVersion,
        ackedVersion: ts.ackedVersion,
        latestVersion,
        nacked: ts.nacked,
      },
    };
  }

  /** Per type sync status of a stream of either protocol. */
  function streamTypeStatuses(st: StreamState | DeltaStream, snapshot: Snapshot | undefined): { typeUrl: string; status: TypeSyncStatus; state: SyncState }[] {
    if (!('types' in st)) return st.typeStatuses(snapshot);
    return [...st.types].map(([typeUrl, ts]) => ({ typeUrl, ...typeStatus(snapshot, typeUrl, ts) }));
  }

  function status(): ProxyStatus[] {
    const byNode = new Map<string, (StreamState | DeltaStream)[]>();
    for (const st of [...streams.values(), ...deltaStreams.values()]) {
      if (st.node === undefined || st.closed) continue;
      const list = byNode.get(st.node.id) ?? [];
      list.push(st);
      byNode.set(st.node.id, list);
    }
    const out: ProxyStatus[] = [];
    for (const [nodeId, list] of byNode) {
      const newest = list.reduce((a, b) => (b.id > a.id ? b : a));
      const node = newest.node as XdsNode;
      const snapshot = opts.source.snapshotFor(node);
      const perType: Record<string, TypeSyncStatus> = {};
      let overall: SyncState = 'synced';
      for (const { typeUrl, status: s, state } of streamTypeStatuses(newest, snapshot)) {
        perType[shortType(typeUrl)] = s;
        if (state === 'rejected') overall = 'rejected';
        else if (state === 'stale' && overall === 'synced') overall = 'stale';
      }
      out.push({
        nodeId,
        cluster: node.cluster,
        locality: node.locality,
        userAgent: `${node.userAgentName} ${node.userAgentVersion}`.trim(),
        connectedAt: list.reduce((a, b) => (b.connectedAt < a.connectedAt ? b : a)).connectedAt.toISOString(),
        streams: list.length,
        snapshotLabel: snapshot?.label ?? null,
        perType,
        status: overall,
      });
    }
    return out.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  return {
    listen(host, port, credentials = grpc.ServerCredentials.createInsecure()) {
      return new Promise((resolve, reject) => {
        const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        grpcServer.bindAsync(addr, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
      });
    },
    status,
    pushQueue: () => ({ inflightBytes: inflight, waitingStreams: pending.size }),
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close({ graceMs = 0 } = {}) {
      if (closed) return;
      closed = true;
      unsubscribe();
      await new Promise<void>((resolve) => {
        if (graceMs <= 0) {
          grpcServer.forceShutdown();
          resolve();
          return;
        }
        const force = setTimeout(() => {
          grpcServer.forceShutdown();
          resolve();
        }, graceMs);
        grpcServer.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      for (const st of [...streams.values(), ...deltaStreams.values()]) st.closed = true;
      streams.clear();
      deltaStreams.clear();
      pending.clear();
      flights = [];
      countedFlights = 0;
      inflight = 0;
      clearTimeout(stallTimer);
    },
  };
}

function peerOf(call: grpc.ServerDuplexStream<Buffer, Buffer>): XdsPeer {
  const ctx = call.getAuthContext();
  const cert = ctx?.sslPeerCertificate;
  const sans = (cert?.subjectaltname ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  return { uriSans: sans, secure: ctx?.transportSecurityType === 'ssl' };
}

function pushOrder(types: Iterable<string>): string[] {
  const all = [...types];
  return [...PUSH_ORDER.filter((t) => all.includes(t)), ...all.filter((t) => !PUSH_ORDER.includes(t))];
}

/** The stream's current named subscriptions, for decodeRequest to match ACKs against. */
function knownNames(st: StreamState): NameList[] {
  const out: NameList[] = [];
  for (const ts of st.types.values()) if (ts.nameList !== null) out.push(ts.nameList);
  return out;
}

/** Does `names` name exactly the subscription? The same bytes as before
 * decode to the same interned list; otherwise (another order, say) compare as sets. */
function sameList(ts: TypeState, names: NameList): boolean {
  const a = ts.names;
  if (ts.nameList === names) return true;
  if (a === '*' || a.size !== names.set.size) return false;
  for (const n of names.set) if (!a.has(n)) return false;
  return true;
}
