// One incremental (delta) ADS stream: DeltaAggregatedResources, serving the
// same snapshots (SnapshotSource) as state of the world, through the same
// push slices and budget (server.ts is the host).
//
// Per type URL the stream keeps what the client has — name -> version (the
// resource's content hash), as last sent or as the client reported in
// initial_resource_versions when it reconnected — and what it subscribed to
// (names, and/or the wildcard). A response carries only resources whose
// version differs from what the client has, and removed_resources for names
// it has that are gone; a named subscription to a resource that does not
// exist is answered with that name in removed_resources, so the client stops
// waiting for it. Rules:
// - The first request of a type is answered once a snapshot exists, even if
//   nothing differs (a resumed client then knows it is current).
// - Listener and Cluster first requests with no names are wildcards (as in
//   Envoy's legacy wildcard); "*" subscribes to the wildcard explicitly.
// - ACK/NACK are matched by the latest nonce, as in state of the world; a
//   NACKed version is not resent, the next change is. Subscription changes
//   are applied whatever nonce the request carries.
// - After a change, the diff against the last synced snapshot is computed
//   once per pair of snapshots (snapshot-diff.ts) and intersected with the
//   stream's subscription.
import * as grpc from '@grpc/grpc-js';
import { decodeDeltaRequest, encodeDeltaResponse, type DeltaDiscoveryRequest, type DeltaResource } from './delta-method.ts';
import type { SnapshotSource, XdsNode } from './cache.ts';
import type { ResourceTypeUrl } from './protos.ts';
import type { Snapshot, SnapshotTypeResources } from './snapshot.ts';
import { changedSince, removedSince } from './snapshot-diff.ts';
import type { NackInfo, SyncState, TypeSyncStatus, XdsServerEvent } from './server.ts';

/** What server.ts lends a delta stream. */
export interface DeltaHost {
  readonly source: SnapshotSource;
  readonly controlPlaneId: string | undefined;
  readonly wildcardTypes: ReadonlySet<string>;
  readonly knownTypes: ReadonlySet<string>;
  pushOrder(types: Iterable<string>): string[];
  emit(e: XdsServerEvent): void;
  /** The stream's remote host, as on state-of-the-world connect events. */
  peerOf(call: grpc.ServerDuplexStream<Buffer, Buffer>): string;
  /** May this node have config on this stream (server.ts `authorize`)? An error message refuses it. */
  authorize(node: XdsNode, call: grpc.ServerDuplexStream<Buffer, Buffer>): string | undefined;
  /** Flush `s` now if the push budget allows, else in a later slice. */
  schedule(s: DeltaStream): void;
  /** Writes a response counted against the push budget; sets `s.blocked` when the stream's buffer is full. */
  write(s: DeltaStream, body: Buffer): void;
  /** The stream ended: stop counting its writes, forget it. */
  finished(s: DeltaStream, reason: string): void;
}

interface DeltaTypeState {
  wildcard: boolean;
  readonly names: Set<string>;
  /** What the client has: name -> version ("" = told it does not exist). */
  readonly has: Map<string, string>;
  /** The snapshot resources the client was last brought in line with (null: compare in full). */
  synced: SnapshotTypeResources | null;
  /** Answer the next flush even if nothing differs. */
  answer: boolean;
  sentVersion: string | null;
  sentNonce: string | null;
  ackedVersion: string | null;
  nacked: NackInfo | null;
}

export interface DeltaStream {
  readonly id: number;
  readonly connectedAt: Date;
  readonly call: grpc.ServerDuplexStream<Buffer, Buffer>;
  node: XdsNode | undefined;
  closed: boolean;
  blocked: boolean;
  /** Written and not yet taken by the socket (the host's budget records). */
  readonly flights: Set<object>;
  flush(): void;
  /** A new snapshot may change any type: answer them all at the next flush. */
  onSnapshotChange(): void;
  /** Sync status per type URL against `snapshot`. */
  typeStatuses(snapshot: Snapshot | undefined): { typeUrl: string; status: TypeSyncStatus; state: SyncState }[];
}

export function serveDeltaStream(host: DeltaHost, id: number, call: grpc.ServerDuplexStream<Buffer, Buffer>): DeltaStream {
  const types = new Map<string, DeltaTypeState>();
  const due = new Set<string>();
  let nonces = 0;

  const s: DeltaStream = {
    id,
    connectedAt: new Date(),
    call,
    node: undefined,
    closed: false,
    blocked: false,
    flights: new Set(),
    flush,
    onSnapshotChange,
    typeStatuses,
  };

  function flush(): void {
    if (s.closed || s.node === undefined || s.blocked || due.size === 0) return;
    const snapshot = host.source.snapshotFor(s.node);
    for (const typeUrl of host.pushOrder([...due])) {
      if (s.blocked) return; // 'drain' flushes the rest
      due.delete(typeUrl);
      respond(typeUrl, snapshot);
    }
  }

  function respond(typeUrl: string, snapshot: Snapshot | undefined): void {
    const ts = types.get(typeUrl);
    const typeRes = snapshot?.types.get(typeUrl as ResourceTypeUrl);
    if (ts === undefined || typeRes === undefined) return; // answered when a snapshot lands
    if (typeRes === ts.synced && !ts.answer) return;
    // Same content (a type's version is its content hash), another object
    // (a view's composed snapshot): nothing to diff.
    if (!ts.answer && ts.synced !== null && typeRes.version === ts.synced.version) {
      ts.synced = typeRes;
      return;
    }
    const send: DeltaResource[] = [];
    const removed: string[] = [];
    const wanted = (name: string): boolean => ts.wildcard || ts.names.has(name);
    if (ts.synced !== null) {
      // Same subscription as at the last sync: only the snapshot moved.
      for (const r of changedSince(typeRes, ts.synced)) if (wanted(r.name) && ts.has.get(r.name) !== r.hash) send.push({ name: r.name, version: r.hash, any: r.any });
      for (const name of removedSince(typeRes, ts.synced)) if (ts.has.has(name) && ts.has.get(name) !== '') removed.push(name);
    } else {
      if (ts.wildcard) {
        for (const r of typeRes.resources.values()) if (ts.has.get(r.name) !== r.hash) send.push({ name: r.name, version: r.hash, any: r.any });
      }
      for (const name of ts.names) {
        const r = typeRes.resources.get(name);
        if (r === undefined) {
          if (ts.has.get(name) !== '') removed.push(name); // gone, or never was: the client stops waiting
        } else if (!ts.wildcard && ts.has.get(name) !== r.hash) send.push({ name, version: r.hash, any: r.any });
      }
      for (const [name, v] of ts.has) {
        if (v !== '' && !typeRes.resources.has(name) && !ts.names.has(name)) removed.push(name);
      }
    }
    const answer = ts.answer;
    ts.synced = typeRes;
    ts.answer = false;
    if (send.length === 0 && removed.length === 0 && !answer) return;
    for (const r of send) ts.has.set(r.name, r.version);
    for (const name of removed) {
      if (ts.names.has(name)) ts.has.set(name, '');
      else ts.has.delete(name);
    }
    const nonce = `d${s.id}-${++nonces}`;
    const body = encodeDeltaResponse({
      systemVersionInfo: typeRes.version,
      resources: send,
      typeUrl,
      removed,
      nonce,
      ...(host.controlPlaneId === undefined ? {} : { controlPlane: host.controlPlaneId }),
    });
    ts.sentVersion = typeRes.version;
    ts.sentNonce = nonce;
    host.write(s, body);
    host.emit({ kind: 'push', streamId: s.id, nodeId: s.node!.id, typeUrl, version: typeRes.version, nonce, resources: send.map((r) => r.name), removed });
  }

  function onRequest(req: DeltaDiscoveryRequest): void {
    if (s.node === undefined) {
      if (req.node === undefined || req.node.id === '') {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'the first DeltaDiscoveryRequest on a stream must carry node.id' });
        call.end();
        return;
      }
      const refused = host.authorize(req.node, call);
      if (refused !== undefined) {
        host.emit({ kind: 'stream_error', streamId: s.id, message: `node ${req.node.id} refused: ${refused}` });
        call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: refused });
        call.end();
        return;
      }
      s.node = req.node;
      host.emit({ kind: 'connect', streamId: s.id, node: req.node, peer: host.peerOf(call) });
    }
    const typeUrl = req.typeUrl;
    if (typeUrl === '') return;
    let ts = types.get(typeUrl);
    const first = ts === undefined;
    if (ts === undefined) {
      ts = { wildcard: false, names: new Set(), has: new Map(req.initialVersions), synced: null, answer: true, sentVersion: null, sentNonce: null, ackedVersion: null, nacked: null };
      types.set(typeUrl, ts);
      if (req.subscribe.length === 0 && host.wildcardTypes.has(typeUrl)) ts.wildcard = true;
    }
    if (req.responseNonce !== '' && req.responseNonce === ts.sentNonce) {
      const nodeId = s.node.id;
      const version = ts.sentVersion ?? '';
      if (req.errorDetail !== undefined) {
        if (ts.nacked?.nonce !== req.responseNonce) {
          ts.nacked = { version, nonce: req.responseNonce, message: req.errorDetail.message, at: new Date().toISOString() };
          host.emit({ kind: 'nack', streamId: s.id, nodeId, typeUrl, version, nonce: req.responseNonce, message: req.errorDetail.message });
        }
      } else if (ts.nacked?.nonce !== req.responseNonce) {
        const news = ts.ackedVersion !== version || ts.nacked !== null;
        ts.ackedVersion = version;
        ts.nacked = null;
        if (news) host.emit({ kind: 'ack', streamId: s.id, nodeId, typeUrl, version, nonce: req.responseNonce });
      }
    }
    let changed = false;
    for (const n of req.subscribe) {
      if (n === '*') {
        changed = !ts.wildcard || changed;
        ts.wildcard = true;
      } else if (!ts.names.has(n)) {
        ts.names.add(n);
        changed = true;
      }
    }
    for (const n of req.unsubscribe) {
      if (n === '*') {
        changed = ts.wildcard || changed;
        ts.wildcard = false;
      } else if (ts.names.delete(n)) changed = true;
    }
    if (changed && !ts.wildcard) {
      // The client drops what it unsubscribed from: forget it too.
      for (const name of ts.has.keys()) if (!ts.names.has(name)) ts.has.delete(name);
    }
    if (first || changed) {
      ts.synced = null;
      due.add(typeUrl);
      host.schedule(s);
    }
  }

  function onSnapshotChange(): void {
    for (const t of types.keys()) due.add(t);
  }

  function typeStatuses(snapshot: Snapshot | undefined): { typeUrl: string; status: TypeSyncStatus; state: SyncState }[] {
    const out: { typeUrl: string; status: TypeSyncStatus; state: SyncState }[] = [];
    for (const [typeUrl, ts] of types) {
      const typeRes = snapshot?.types.get(typeUrl as ResourceTypeUrl);
      let state: SyncState = 'synced';
      if (ts.nacked !== null) state = 'rejected';
      else if (typeRes === undefined && host.knownTypes.has(typeUrl)) state = 'stale';
      else if (typeRes !== undefined && (ts.synced !== typeRes || due.has(typeUrl))) state = 'stale';
      else if (ts.sentVersion !== null && ts.ackedVersion !== ts.sentVersion) state = 'stale';
      out.push({
        typeUrl,
        state,
        status: {
          typeUrl,
          subscribed: ts.wildcard ? '*' : [...ts.names].sort(),
          sentVersion: ts.sentVersion,
          ackedVersion: ts.ackedVersion,
          latestVersion: typeRes?.version ?? null,
          nacked: ts.nacked,
        },
      });
    }
    return out;
  }

  call.sendMetadata(new grpc.Metadata());
  call.on('data', (buf: Buffer) => {
    let req: DeltaDiscoveryRequest;
    try {
      req = decodeDeltaRequest(buf);
    } catch (err) {
      host.emit({ kind: 'stream_error', streamId: s.id, message: (err as Error).message });
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `bad DeltaDiscoveryRequest: ${(err as Error).message}` });
      host.finished(s, 'bad request');
      return;
    }
    onRequest(req);
  });
  call.on('drain', () => {
    s.blocked = false;
    if (due.size > 0) host.schedule(s);
  });
  call.on('end', () => {
    host.finished(s, 'client closed the stream');
    call.end();
  });
  call.on('cancelled', () => host.finished(s, 'cancelled'));
  call.on('error', (err: Error) => {
    host.emit({ kind: 'stream_error', streamId: s.id, message: err.message });
    host.finished(s, err.message);
  });
  call.on('close', () => host.finished(s, 'closed'));

  return s;
}
