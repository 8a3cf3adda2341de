// An ADS client on grpc-js, incremental (delta, `apiType: 'DELTA_GRPC'`) or
// state of the world (`'GRPC'`, the default), as Envoy's ApiConfigSource: one stream to the control
// plane, subscriptions per type URL, every response decoded and handed to the
// owner, who accepts it (ACK) or rejects it (NACK with the reason in
// error_detail). Reconnects forever (src/lib/backoff.ts: full jitter, a
// ceiling of a few seconds while an outage is young); the owner keeps whatever it last accepted while the control plane is away.
// Several control-plane replicas may be listed ("host:port,host:port"): the
// client stays on one while its stream lives and moves to the next address
// each time a stream ends or fails to open (docs/high-availability.md).
//
// The owner may answer with a promise (the proxy fetches plugin code named by
// URL before it accepts a listener set): the ACK/NACK waits until it
// settles, and the responses that arrive meanwhile wait, in order, behind it
// (the owner's check bounds the wait: plugins/remote-code.ts's 10 s fetch
// timeout). A verdict for a stream that has since ended is not sent.
//
// The node goes on the first request of each stream. Subscription changes made
// while the owner handles a response are sent after that response's ACK, so
// the server sees LDS ACK -> RDS request, as from Envoy.
//
// Delta: the client keeps each type's resources (name -> version, JSON) and
// applies each response's changes and removals to a copy; the owner sees the
// whole resulting set, as with state of the world, and accepts (ACK: the
// copy becomes current) or rejects it (NACK: the old set stays). A new
// stream subscribes with initial_resource_versions, so the server sends only
// what changed while the client was away; a subscription change sends only
// the names added and removed.
import * as grpc from '@grpc/grpc-js';
import { adsMethod, decodeResponse, encodeRequest } from './ads-method.ts';
import { deltaAdsMethod, decodeDeltaResponse, encodeDeltaRequest } from './delta-method.ts';
import type { DiscoveryResponse, NodeInput } from './ads-method.ts';
import { unpackAny, XdsCodecError } from './codec.ts';
import type { JsonObject } from './codec.ts';
import { TypeUrl } from './protos.ts';
import { backoffDelay, RECONNECT_BACKOFF, type Backoff } from '../lib/backoff.ts';

export interface DecodedResource {
  readonly name: string;
  readonly json: JsonObject;
}

export type ResponseVerdict = { readonly ok: true } | { readonly ok: false; readonly message: string };

/** Reconnect backoff; default RECONNECT_BACKOFF (src/lib/backoff.ts). */
export type BackoffOptions = Partial<Backoff>;

export interface AdsClientOptions {
  /** host:port of the control plane, or several comma-separated (replicas, tried in turn). */
  readonly serverUri: string;
  readonly node: NodeInput;
  readonly credentials?: grpc.ChannelCredentials;
  readonly backoff?: BackoffOptions;
  /** 'GRPC' (state of the world, default) or 'DELTA_GRPC' (incremental). */
  readonly apiType?: ApiType;
  /** Decides about every response: accept (ACK) or reject (NACK). `resources`
   * is the response's (state of the world) or the whole resulting set
   * (delta); `removed` names the resources a delta response removed (or
   * that do not exist). */
  readonly onResponse: (typeUrl: string, version: string, resources: readonly DecodedResource[], removed: readonly string[]) => ResponseVerdict | Promise<ResponseVerdict>;
  /** Connection changes, for logs and readiness. */
  readonly onConnectionChange?: (connected: boolean, reason: string) => void;
}

export type ApiType = 'GRPC' | 'DELTA_GRPC';

export interface TypeClientState {
  readonly subscribed: readonly string[] | '*';
  readonly ackedVersion: string | null;
  readonly lastNonce: string | null;
  readonly lastNack: { readonly version: string; readonly message: string; readonly at: string } | null;
}

export interface AdsClientState {
  readonly connected: boolean;
  /** Connection attempts that failed or streams that ended, since start. */
  readonly disconnects: number;
  readonly lastError: string | null;
  /** The address of the current (or next) stream. */
  readonly server: string;
  readonly perType: Readonly<Record<string, TypeClientState>>;
}

export interface AdsClient {
  /** Sets the names subscribed for a type ("*" = wildcard); sends a request when it changes. */
  subscribe(typeUrl: string, names: readonly string[] | '*'): void;
  state(): AdsClientState;
  close(): void;
}

interface TypeSub {
  names: readonly string[] | '*';
  ackedVersion: string | null;
  lastNonce: string | null;
  lastNack: TypeClientState['lastNack'];
  /** Delta: the accepted resources, and the names the server was told of on this stream. */
  resources: Map<string, { version: string; resource: DecodedResource }>;
  sentNames: readonly string[] | '*' | null;
}

const NAME_FIELD: Record<string, string> = { [TypeUrl.endpoint]: 'clusterName' };
const INVALID_ARGUMENT = 3;

export function startAdsClient(opts: AdsClientOptions): AdsClient {
  const backoff: Backoff = { ...RECONNECT_BACKOFF, ...opts.backoff };
  const delta = opts.apiType === 'DELTA_GRPC';
  const Client = grpc.makeGenericClientConstructor({ StreamAggregatedResources: adsMethod, DeltaAggregatedResources: deltaAdsMethod }, 'ads');
  const servers = parseServerList(opts.serverUri);
  const grpcClients = new Map<string, grpc.Client>();
  let serverIndex = 0;
  const clientFor = (address: string): grpc.Client => {
    let c = grpcClients.get(address);
    if (c === undefined) {
      c = new Client(address, opts.credentials ?? grpc.credentials.createInsecure(), {
        // The channel's own reconnect backoff (default up to 120 s) must not
        // outlast ours: while it waits, every stream we open fails at once.
        'grpc.initial_reconnect_backoff_ms': backoff.initialMs,
        'grpc.max_reconnect_backoff_ms': Math.min(backoff.earlyMaxMs, backoff.maxMs),
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
      grpcClients.set(address, c);
    }
    return c;
  };
  const currentServer = (): string => servers[serverIndex % servers.length]!;
  const openStream = (): grpc.ClientDuplexStream<Buffer, Buffer> => {
    const c = clientFor(currentServer()) as unknown as Record<'StreamAggregatedResources' | 'DeltaAggregatedResources', () => grpc.ClientDuplexStream<Buffer, Buffer>>;
    return delta ? c.DeltaAggregatedResources() : c.StreamAggregatedResources();
  };

  const subs = new Map<string, TypeSub>();
  let call: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  let nodeSent = false;
  let connected = false;
  let closed = false;
  let attempt = 0;
  let disconnects = 0;
  let lastError: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  /** True from a response's arrival until its ACK/NACK is sent. */
  let handling = false;
  const dirty = new Set<string>();
  /** Responses that arrived while one was being judged asynchronously. */
  const queued: { stream: grpc.ClientDuplexStream<Buffer, Buffer>; buf: Buffer }[] = [];

  function send(typeUrl: string, extra: { version?: string; nonce?: string; error?: string } = {}): void {
    const sub = subs.get(typeUrl);
    if (call === undefined || sub === undefined) return;
    if (delta) {
      sendDelta(call, typeUrl, sub, extra);
      return;
    }
    const first = !nodeSent;
    nodeSent = true;
    call.write(
      encodeRequest({
        versionInfo: extra.version ?? sub.ackedVersion ?? '',
        resourceNames: sub.names === '*' ? [] : sub.names,
        typeUrl,
        responseNonce: extra.nonce ?? sub.lastNonce ?? '',
        ...(first ? { node: opts.node } : {}),
        ...(extra.error === undefined ? {} : { errorDetail: { code: INVALID_ARGUMENT, message: extra.error } }),
      }),
    );
  }

  /** A delta request: the subscription changes since the server was last
   * told (all of it, with the versions held, on a new stream), and the
   * ACK/NACK of `extra.nonce`. */
  function sendDelta(stream: grpc.ClientDuplexStream<Buffer, Buffer>, typeUrl: string, sub: TypeSub, extra: { nonce?: string; error?: string }): void {
    const first = !nodeSent;
    nodeSent = true;
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    let initialVersions: Map<string, string> | undefined;
    if (sub.sentNames === null) {
      subscribe.push(...(sub.names === '*' ? ['*'] : sub.names));
      initialVersions = new Map([...sub.resources].map(([n, r]) => [n, r.version]));
    } else if (!sameNames(sub.sentNames, sub.names)) {
      const before = new Set(sub.sentNames === '*' ? ['*'] : sub.sentNames);
      const after = new Set(sub.names === '*' ? ['*'] : sub.names);
      for (const n of after) if (!before.has(n)) subscribe.push(n);
      for (const n of before) if (!after.has(n)) unsubscribe.push(n);
    } else if (extra.nonce === undefined) {
      return; // nothing to say
    }
    sub.sentNames = sub.names;
    if (sub.names !== '*') {
      // Unsubscribed resources are dropped (the server forgets them too).
      const keep = new Set(sub.names);
      for (const n of sub.resources.keys()) if (!keep.has(n)) sub.resources.delete(n);
    }
    stream.write(
      encodeDeltaRequest({
        typeUrl,
        subscribe,
        unsubscribe,
        ...(initialVersions === undefined ? {} : { initialVersions }),
        responseNonce: extra.nonce ?? '',
        ...(first ? { node: opts.node } : {}),
        ...(extra.error === undefined ? {} : { errorDetail: { code: INVALID_ARGUMENT, message: extra.error } }),
      }),
    );
  }

  function setConnected(value: boolean, reason: string): void {
    if (connected === value) return;
    connected = value;
    opts.onConnectionChange?.(value, reason);
  }

  function decode(res: DiscoveryResponse): DecodedResource[] | string {
    const out: DecodedResource[] = [];
    for (const [i, any] of res.resources.entries()) {
      if (any.type_url !== res.typeUrl) return `resource ${i}: type ${any.type_url} in a ${res.typeUrl} response`;
      try {
        const json = unpackAny(any);
        const name = json[NAME_FIELD[res.typeUrl] ?? 'name'];
        if (typeof name !== 'string' || name === '') return `resource ${i}: no name`;
        out.push({ name, json });
      } catch (err) {
        if (err instanceof XdsCodecError) return `resource ${i}: ${err.message}`;
        throw err;
      }
    }
    return out;
  }

  /** Hands the owner the whole set a delta response leads to; ACKs (and
   * keeps it) or NACKs (and keeps the old one). */
  function onDeltaResponse(buf: Buffer, stream: grpc.ClientDuplexStream<Buffer, Buffer>): void {
    const res = decodeDeltaResponse(buf);
    attempt = 0;
    setConnected(true, 'response received');
    const sub = subs.get(res.typeUrl);
    if (sub === undefined) return;
    sub.lastNonce = res.nonce;
    const next = new Map(sub.resources);
    for (const n of res.removed) next.delete(n);
    const decoded = decode({ versionInfo: res.systemVersionInfo, typeUrl: res.typeUrl, nonce: res.nonce, resources: res.resources.map((r) => r.any) });
    if (typeof decoded !== 'string') {
      for (const [i, d] of decoded.entries()) next.set(d.name, { version: res.resources[i]!.version, resource: d });
    }
    const verdict = typeof decoded === 'string' ? { ok: false as const, message: decoded } : judge(res.typeUrl, res.systemVersionInfo, [...next.values()].map((r) => r.resource), res.removed);
    conclude(stream, res.typeUrl, verdict, (v) => {
      if (v.ok) {
        sub.resources = next;
        sub.ackedVersion = res.systemVersionInfo;
        sub.lastNack = null;
        send(res.typeUrl, { nonce: res.nonce });
      } else {
        sub.lastNack = { version: res.systemVersionInfo, message: v.message, at: new Date().toISOString() };
        send(res.typeUrl, { nonce: res.nonce, error: v.message });
      }
    });
  }

  /** Applies a verdict now, or when its promise settles (holding the responses after it). */
  function conclude(stream: grpc.ClientDuplexStream<Buffer, Buffer>, typeUrl: string, verdict: ResponseVerdict | Promise<ResponseVerdict>, apply: (v: ResponseVerdict) => void): void {
    const done = (v: ResponseVerdict): void => {
      if (call === stream) apply(v);
      handling = false;
      dirty.delete(typeUrl);
      for (const t of [...dirty]) send(t);
      dirty.clear();
    };
    if (!(verdict instanceof Promise)) {
      done(verdict);
      return;
    }
    handling = true;
    verdict
      .catch((err: Error) => ({ ok: false as const, message: `internal error: ${err.message}` }))
      .then((v) => {
        done(v);
        drain();
      });
  }

  /** Handles the responses queued behind an asynchronous verdict, until the next one. */
  function drain(): void {
    while (!handling && queued.length > 0) {
      const { stream, buf } = queued.shift()!;
      if (call !== stream) continue; // that stream is gone; a new one starts over
      handleData(stream, buf);
    }
  }

  function handleData(stream: grpc.ClientDuplexStream<Buffer, Buffer>, buf: Buffer): void {
    try {
      onResponse(buf, stream);
    } catch (err) {
      handling = false;
      lastError = `bad DiscoveryResponse: ${(err as Error).message}`;
      stream.cancel();
    }
  }

  /** The owner's verdict; `handling` stays true while it is pending (conclude() clears it). */
  function judge(typeUrl: string, version: string, resources: readonly DecodedResource[], removed: readonly string[]): ResponseVerdict | Promise<ResponseVerdict> {
    handling = true;
    try {
      return opts.onResponse(typeUrl, version, resources, removed);
    } catch (err) {
      return { ok: false, message: `internal error: ${(err as Error).message}` };
    }
  }

  function onResponse(buf: Buffer, stream: grpc.ClientDuplexStream<Buffer, Buffer>): void {
    if (delta) {
      onDeltaResponse(buf, stream);
      return;
    }
    const res = decodeResponse(buf);
    attempt = 0;
    setConnected(true, 'response received');
    const sub = subs.get(res.typeUrl);
    if (sub === undefined) return; // not (or no longer) subscribed
    sub.lastNonce = res.nonce;
    const decoded = decode(res);
    const verdict = typeof decoded === 'string' ? { ok: false as const, message: decoded } : judge(res.typeUrl, res.versionInfo, decoded, []);
    conclude(stream, res.typeUrl, verdict, (v) => {
      if (v.ok) {
        sub.ackedVersion = res.versionInfo;
        sub.lastNack = null;
        send(res.typeUrl, { version: res.versionInfo, nonce: res.nonce });
      } else {
        sub.lastNack = { version: res.versionInfo, message: v.message, at: new Date().toISOString() };
        send(res.typeUrl, { nonce: res.nonce, error: v.message });
      }
    });
  }

  function connect(): void {
    timer = undefined;
    if (closed) return;
    nodeSent = false;
    for (const sub of subs.values()) sub.sentNames = null;
    const stream = openStream();
    call = stream;
    let ended = false;
    const onEnd = (reason: string): void => {
      if (ended) return;
      ended = true;
      if (call === stream) call = undefined;
      if (closed) return;
      disconnects++;
      lastError = `${currentServer()}: ${reason}`;
      serverIndex = (serverIndex + 1) % servers.length; // next replica

      setConnected(false, reason);
      scheduleReconnect();
    };
    stream.on('metadata', () => setConnected(true, 'stream established'));
    stream.on('data', (buf: Buffer) => {
      if (handling) queued.push({ stream, buf });
      else handleData(stream, buf);
    });
    stream.on('error', (err: grpc.ServiceError) => onEnd(err.details || err.message));
    stream.on('status', (s: grpc.StatusObject) => onEnd(s.code === grpc.status.OK ? 'the control plane closed the stream' : s.details));
    stream.on('end', () => onEnd('stream ended'));
    // Subscriptions in a stable order: CDS, EDS, LDS, RDS, then the rest.
    const order = [TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.listener, TypeUrl.route] as string[];
    const types = [...subs.keys()].sort((a, b) => rank(order, a) - rank(order, b));
    for (const t of types) send(t, { nonce: '' });
  }

  function scheduleReconnect(): void {
    if (closed || timer !== undefined) return;
    const delay = backoffDelay(attempt, backoff);
    attempt++;
    timer = setTimeout(connect, delay);
    timer.unref?.();
  }

  connect();

  return {
    subscribe(typeUrl, names) {
      const normalized = names === '*' ? '*' : [...new Set(names)].sort();
      const sub = subs.get(typeUrl);
      if (sub !== undefined && sameNames(sub.names, normalized)) return;
      if (sub === undefined) subs.set(typeUrl, { names: normalized, ackedVersion: null, lastNonce: null, lastNack: null, resources: new Map(), sentNames: null });
      else sub.names = normalized;
      if (handling) dirty.add(typeUrl);
      else send(typeUrl);
    },
    state() {
      const perType: Record<string, TypeClientState> = {};
      for (const [t, s] of subs) perType[t] = { subscribed: s.names, ackedVersion: s.ackedVersion, lastNonce: s.lastNonce, lastNack: s.lastNack };
      return { connected, disconnects, lastError, server: currentServer(), perType };
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      call?.cancel();
      call = undefined;
      for (const c of grpcClients.values()) c.close();
      setConnected(false, 'closed');
    },
  };
}

/** "a:1, b:2" -> ["a:1", "b:2"]; throws on an empty list. */
export function parseServerList(serverUri: string): string[] {
  const list = serverUri.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new Error(`serverUri: no control-plane address in ${JSON.stringify(serverUri)}`);
  return list;
}

function rank(order: readonly string[], t: string): number {
  const i = order.indexOf(t);
  return i < 0 ? order.length : i;
}

function sameNames(a: readonly string[] | '*', b: readonly string[] | '*'): boolean {
  if (a === '*' || b === '*') return a === b;
  return a.length === b.length && a.every((n, i) => n === b[i]);
}
