// The resource service: validate, apply (create or update with optimistic
// concurrency), get, list with label selectors, delete and watch, over the
// revisioned Store. `metadata.resourceVersion` is the key's modRevision;
// `generation` counts spec changes; status is computed on read (status.ts).
import { randomUUID } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import type { KeyValue, Store, StoreError, WatchEvent } from '../store/types.ts';
import { validateResource } from '../../api/validate.ts';
import { unifiedDiff } from '../../api/unified-diff.ts';
import type { LabelSelector } from '../../api/label-selector.ts';
import { referencedKinds } from '../../api/kinds.ts';
import type { FieldError, Resource, ResourceKey } from '../../api/types.ts';
import { RESOURCES_PREFIX, kindPrefix, parseResourceKey, resourceKey } from './keys.ts';
import { computeStatus, refId, references, type RefIndex } from './status.ts';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyOptions {
  dryRun?: boolean;
  /** Precondition: the object's current resourceVersion ("0": must not exist). Defaults to metadata.resourceVersion if the input has one. */
  expectResourceVersion?: string;
}

export type ApplyResult =
  | { ok: true; action: ApplyAction; resource: Resource; /** Unified diff of the YAML (empty when unchanged). */ diff: string }
  | { ok: false; code: 'invalid'; message: string; errors: FieldError[] }
  | { ok: false; code: 'quota_exceeded'; message: string }
  | { ok: false; code: 'conflict'; message: string; current: Resource | null };

export type DeleteResourceResult =
  | { ok: true; resource: Resource }
  | { ok: false; code: 'not_found'; message: string }
  | { ok: false; code: 'conflict'; message: string; current: Resource | null };

export interface ResourceEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The store revision of the change (a status-only MODIFIED shares its cause's revision). */
  revision: number;
  object: Resource;
}

export interface ResourceWatchHandlers {
  onEvent(ev: ResourceEvent): void;
  onError?(err: StoreError): void;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: LabelSelector;
}

export interface ResourceService {
  apply(input: unknown, opts?: ApplyOptions): Promise<ApplyResult>;
  get(key: ResourceKey): Promise<Resource | null>;
  list(kind: string, opts?: ListOptions): Promise<{ items: Resource[]; revision: number }>;
  delete(key: ResourceKey, opts?: { expectResourceVersion?: string; dryRun?: boolean }): Promise<DeleteResourceResult>;
  /** Without fromRevision: ADDED for everything now, then changes. With it: every change from that revision on. */
  watch(kind: string | undefined, opts: { fromRevision?: number }, handlers: ResourceWatchHandlers): { cancel(): void };
}

const MAX_APPLY_ATTEMPTS = 5;

/** How much of one kind the store may hold: a caller cannot fill the
 * control plane's disk or memory (every watcher holds every resource). */
export interface KindQuota {
  /** Objects of one kind, all namespaces together. */
  readonly maxObjects: number;
  /** Bytes of one kind's stored JSON, all namespaces together. */
  readonly maxBytes: number;
}

export const DEFAULT_KIND_QUOTA: KindQuota = { maxObjects: 10_000, maxBytes: 32 * 1024 * 1024 };

export interface ResourceServiceOptions {
  /** Per kind; DEFAULT_KIND_QUOTA when absent. */
  readonly quota?: KindQuota;
  /** What translation said about `kind namespace/name` (e.g. fields a proxyless client kind ignores), added to its status warnings. */
  readonly translationWarnings?: (kind: string, namespace: string, name: string) => readonly string[];
}

function nonEmpty(m: Record<string, string> | undefined): m is Record<string, string> {
  return m !== undefined && Object.keys(m).length > 0;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/** JSON with sorted keys, for "did anything change" comparisons. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : val);
}

/** The part of a resource a user writes: what diffs and "unchanged" compare. */
export function userView(r: Resource | null): unknown {
  if (!r) return null;
  const m = r.metadata;
  return {
    apiVersion: r.apiVersion,
    kind: r.kind,
    metadata: { name: m.name, namespace: m.namespace, ...(nonEmpty(m.labels) ? { labels: m.labels } : {}), ...(nonEmpty(m.annotations) ? { annotations: m.annotations } : {}) },
    spec: r.spec,
  };
}

function yamlOf(r: Resource | null): string {
  return r ? toYaml(userView(r), { sortMapEntries: false }) : '';
}

function decode(kv: KeyValue): Resource | undefined {
  try {
    const r = JSON.parse(kv.value) as Resource;
    r.metadata.resourceVersion = String(kv.modRevision);
    return r;
  } catch {
    return undefined;
  }
}

export function createResourceService(store: Store, opts: ResourceServiceOptions = {}): ResourceService {
  const quota = opts.quota ?? DEFAULT_KIND_QUOTA;
  /** Would writing `value` at `key` (replacing `old` bytes) exceed the kind's quota? */
  async function overQuota(kind: string, key: string, value: string, old: KeyValue | null): Promise<string | null> {
    const { items } = await store.list(kindPrefix(kind));
    let bytes = 0;
    for (const kv of items) if (kv.key !== key) bytes += Buffer.byteLength(kv.value);
    const count = items.length + (old ? 0 : 1);
    if (!old && count > quota.maxObjects) return `quota exceeded for kind ${kind}: at most ${quota.maxObjects} objects (there are ${items.length}); delete some or raise --max-objects-per-kind`;
    const total = bytes + Buffer.byteLength(value);
    if (total > quota.maxBytes) return `quota exceeded for kind ${kind}: at most ${quota.maxBytes} bytes of ${kind} objects (this write would make ${total}); delete some or raise --max-bytes-per-kind`;
    return null;
  }

  /** Kinds other resources' status depends on. */
  const REFERENCED_KINDS = new Set(referencedKinds());
  async function refIndex(): Promise<RefIndex> {
    const ids = new Set<string>();
    for (const kind of REFERENCED_KINDS) {
      const { items } = await store.list(kindPrefix(kind));
      for (const kv of items) {
        const k = parseResourceKey(kv.key);
        if (k) ids.add(refId(k.kind, k.namespace, k.name));
      }
    }
    return ids;
  }

  function withStatus(r: Resource, idx: RefIndex): Resource {
    const status = computeStatus(r, idx);
    const extra = status ? (opts.translationWarnings?.(r.kind, r.metadata.namespace ?? 'default', r.metadata.name) ?? []) : [];
    if (status) r.status = extra.length > 0 ? { ...status, warnings: [...(status.warnings ?? []), ...extra] } : status;
    else delete r.status;
    return r;
  }

  async function apply(input: unknown, opts: ApplyOptions = {}): Promise<ApplyResult> {
    const v = validateResource(input);
    if (!v.ok) return { ok: false, code: 'invalid', message: v.errors.map((e) => e.text).join('\n'), errors: v.errors };
    const res = v.resource;
    const key: ResourceKey = { kind: res.kind, namespace: res.metadata.namespace ?? 'default', name: res.metadata.name };
    const who = `${key.kind} ${key.namespace}/${key.name}`;
    const expected = opts.expectResourceVersion ?? res.metadata.resourceVersion;
    for (let attempt = 0; attempt < MAX_APPLY_ATTEMPTS; attempt++) {
      const cur = await store.get(resourceKey(key));
      const old = cur ? decode(cur) ?? null : null;
      if (expected !== undefined && String(cur?.modRevision ?? 0) !== expected) {
        return {
          ok: false, code: 'conflict', current: old,
          message: cur
            ? `${who}: the object has been modified (resourceVersion ${cur.modRevision}, expected ${expected}); get it again and re-apply`
            : `${who}: does not exist (expected resourceVersion ${expected})`,
        };
      }
      const specChanged = !old || canonicalJson(old.spec) !== canonicalJson(res.spec);
      const next: Resource = {
        apiVersion: res.apiVersion,
        kind: res.kind,
        metadata: {
          name: key.name,
          namespace: key.namespace,
          ...(nonEmpty(res.metadata.labels) ? { labels: res.metadata.labels } : {}),
          ...(nonEmpty(res.metadata.annotations) ? { annotations: res.metadata.annotations } : {}),
          uid: old?.metadata.uid ?? randomUUID(),
          generation: old ? (old.metadata.generation ?? 1) + (specChanged ? 1 : 0) : 1,
          creationTimestamp: old?.metadata.creationTimestamp ?? now(),
        },
        spec: res.spec,
      };
      if (old && canonicalJson(userView(old)) === canonicalJson(userView(next))) {
        return { ok: true, action: 'unchanged', resource: withStatus(old, await refIndex()), diff: '' };
      }
      const action: ApplyAction = old ? 'configured' : 'created';
      const diff = unifiedDiff(yamlOf(old), yamlOf(next), { oldName: `${who} (current)`, newName: `${who} (applied)` });
      const value = JSON.stringify(next);
      const over = await overQuota(key.kind, resourceKey(key), value, cur);
      if (over !== null) return { ok: false, code: 'quota_exceeded', message: `${who}: ${over}` };
      if (opts.dryRun) {
        if (cur) next.metadata.resourceVersion = String(cur.modRevision);
        return { ok: true, action, resource: withStatus(next, await refIndex()), diff };
      }
      const put = await store.put(resourceKey(key), value, { expectModRevision: cur ? cur.modRevision : 0 });
      if (put.ok) {
        next.metadata.resourceVersion = String(put.kv.modRevision);
        return { ok: true, action, resource: withStatus(next, await refIndex()), diff };
      }
      if (expected !== undefined) {
        const current = put.current ? decode(put.current) ?? null : null;
        return { ok: false, code: 'conflict', current, message: `${who}: the object has been modified concurrently; get it again and re-apply` };
      }
      // No explicit precondition: someone wrote in between; re-read and try again.
    }
    return { ok: false, code: 'conflict', current: null, message: `${who}: too many concurrent writers; try again` };
  }

  async function get(key: ResourceKey): Promise<Resource | null> {
    const kv = await store.get(resourceKey(key));
    const r = kv ? decode(kv) : undefined;
    return r ? withStatus(r, await refIndex()) : null;
  }

  async function list(kind: string, opts: ListOptions = {}): Promise<{ items: Resource[]; revision: number }> {
    const { items, revision } = await store.list(kindPrefix(kind, opts.namespace));
    const idx = await refIndex();
    const out: Resource[] = [];
    for (const kv of items) {
      const r = decode(kv);
      if (!r) continue;
      if (opts.labelSelector && !opts.labelSelector.matches(r.metadata.labels)) continue;
      out.push(withStatus(r, idx));
    }
    return { items: out, revision };
  }

  async function del(key: ResourceKey, opts: { expectResourceVersion?: string; dryRun?: boolean } = {}): Promise<DeleteResourceResult> {
    const who = `${key.kind} ${key.namespace}/${key.name}`;
    const cur = await store.get(resourceKey(key));
    if (!cur) return { ok: false, code: 'not_found', message: `${who} not found` };
    const old = decode(cur) ?? null;
    if (opts.expectResourceVersion !== undefined && String(cur.modRevision) !== opts.expectResourceVersion) {
      return { ok: false, code: 'conflict', current: old, message: `${who}: resourceVersion is ${cur.modRevision}, expected ${opts.expectResourceVersion}` };
    }
    if (opts.dryRun) return old ? { ok: true, resource: old } : { ok: false, code: 'not_found', message: `${who} not found` };
    const d = await store.delete(resourceKey(key), { expectModRevision: cur.modRevision });
    if (d.ok) {
      const r = decode(d.prev);
      if (r) return { ok: true, resource: r };
      return { ok: false, code: 'not_found', message: `${who} not found` };
    }
    if (d.reason === 'not_found') return { ok: false, code: 'not_found', message: `${who} not found` };
    return { ok: false, code: 'conflict', current: d.current ? decode(d.current) ?? null : null, message: `${who}: modified concurrently; try again` };
  }

  function watch(kind: string | undefined, opts: { fromRevision?: number }, handlers: ResourceWatchHandlers): { cancel(): void } {
    let cancelled = false;
    let storeWatch: { cancel(): void } | undefined;
    // Events are delivered strictly in order: each waits for the previous one's status lookups.
    let chain: Promise<void> = Promise.resolve();
    const emit = (ev: ResourceEvent) => {
      if (!cancelled && (kind === undefined || ev.object.kind === kind)) handlers.onEvent(ev);
    };
    const onStoreEvent = (ev: WatchEvent) => {
      chain = chain.then(async () => {
        if (cancelled) return;
        const key = parseResourceKey(ev.type === 'put' ? ev.kv.key : ev.key);
        if (!key) return;
        const idx = await refIndex();
        if (ev.type === 'put') {
          const r = decode(ev.kv);
          if (r) emit({ type: ev.prev ? 'MODIFIED' : 'ADDED', revision: ev.revision, object: withStatus(r, idx) });
        } else if (ev.prev) {
          const r = decode(ev.prev);
          if (r) emit({ type: 'DELETED', revision: ev.revision, object: withStatus(r, idx) });
        }
        // A Service/Gateway appearing or disappearing changes the status of resources that reference it.
        const appeared = ev.type === 'put' && !ev.prev;
        if (REFERENCED_KINDS.has(key.kind) && (appeared || ev.type === 'delete')) {
          const { items } = await store.list(RESOURCES_PREFIX);
          for (const kv of items) {
            const r = decode(kv);
            if (r && (kind === undefined || r.kind === kind) && references(r, key.kind, key.namespace, key.name)) {
              emit({ type: 'MODIFIED', revision: ev.revision, object: withStatus(r, idx) });
            }
          }
        }
      }).catch((err: unknown) => {
        if (!cancelled) handlers.onError?.(err as StoreError);
      });
    };
    const start = async () => {
      let from = opts.fromRevision;
      if (from === undefined) {
        const { items, revision } = await store.list(kind ? kindPrefix(kind) : RESOURCES_PREFIX);
        const idx = await refIndex();
        for (const kv of items) {
          const r = decode(kv);
          if (r) emit({ type: 'ADDED', revision: kv.modRevision, object: withStatus(r, idx) });
        }
        from = revision + 1;
      }
      if (cancelled) return;
      storeWatch = store.watch(RESOURCES_PREFIX, { fromRevision: from }, {
        onEvent: onStoreEvent,
        onError: (err) => {
          chain = chain.then(() => {
            if (!cancelled) handlers.onError?.(err);
          });
        },
      });
    };
    chain = chain.then(start).catch((err: unknown) => {
      if (!cancelled) handlers.onError?.(err as StoreError);
    });
    return {
      cancel() {
        cancelled = true;
        storeWatch?.cancel();
      },
    };
  }

  return { apply, get, list, delete: del, watch };
}
