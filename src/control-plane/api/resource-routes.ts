// /api/v1 resource endpoints: kinds, apply (with dry-run diff), list/get/delete.
import type { ServerResponse } from 'node:http';
import { KINDS, resolveKind, type KindDef } from '../../api/kinds.ts';
import { parseLabelSelector } from '../../api/label-selector.ts';
import { validateResource } from '../../api/validate.ts';
import { isPlainObject } from '../../api/schema-check.ts';
import { DEFAULT_NAMESPACE, type Resource } from '../../api/types.ts';
import type { ApplyResult, ResourceService } from '../resources/service.ts';
import { apiError, sendError, sendJson, API_ERRORS, type ApiError } from './http-errors.ts';
import { readStructuredBody } from './read-body.ts';
import type { ApiRoute } from './router.ts';

export const MAX_APPLY_ITEMS = 500;

/** One entry of POST /api/v1/apply's `results`. */
export type ApplyItemResult =
  | {
    ok: true; kind: string; apiVersion: string; namespace: string; name: string;
    action: 'created' | 'configured' | 'unchanged'; resourceVersion: string; diff?: string; resource: Resource;
    /** What applying it will break (e.g. workloads a MeshTLS STRICT locks out); absent when nothing. */
    warnings?: string[];
  }
  | { ok: false; kind: string; namespace: string; name: string; error: ApiError };

function kindOr404(res: ServerResponse, name: string): KindDef | undefined {
  const def = resolveKind(name);
  if (!def) sendError(res, apiError('not_found', `unknown kind "${name}": known kinds are ${KINDS.map((k) => k.kind).join(', ')}`));
  return def;
}

/** `kind: List` / `{items}` / an array / one object -> the list of objects to apply. */
function itemsOf(body: unknown): unknown[] {
  if (Array.isArray(body)) return body.flatMap(itemsOf);
  if (isPlainObject(body) && (body.kind === 'List' || (body.kind === undefined && Array.isArray(body.items)))) {
    return Array.isArray(body.items) ? body.items : [];
  }
  return [body];
}

function who(obj: unknown): { kind: string; namespace: string; name: string } {
  const o = isPlainObject(obj) ? obj : {};
  const m = isPlainObject(o.metadata) ? o.metadata : {};
  return {
    kind: typeof o.kind === 'string' ? o.kind : '',
    namespace: typeof m.namespace === 'string' ? m.namespace : DEFAULT_NAMESPACE,
    name: typeof m.name === 'string' ? m.name : '',
  };
}

export interface ResourceRoutesOptions {
  /** Warnings for each applied resource, same order (control-plane/lockout.ts). */
  applyWarnings?: (applied: readonly Resource[]) => Promise<string[][]>;
}

export function resourceRoutes(resources: ResourceService, opts: ResourceRoutesOptions = {}): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/api/v1/kinds',
      handle(_req, res) {
        sendJson(res, 200, {
          kinds: KINDS.map((k) => ({
            kind: k.kind, apiVersion: k.apiVersion, group: k.group, version: k.version, plural: k.plural,
            shortNames: k.shortNames, namespaced: true, columns: k.columns.map((c) => ({ header: c.header, wide: c.wide ?? false })),
            specSchema: k.specSchema,
          })),
        });
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/apply',
      async handle(req, res) {
        const url = new URL(req.url ?? '/', 'http://localhost');
        const dryRun = url.searchParams.get('dryRun') === 'true' || url.searchParams.get('dryRun') === 'All';
        const body = await readStructuredBody(req);
        if (!body.ok) return sendError(res, body.error);
        const items = itemsOf(body.value);
        if (items.length === 0) return sendError(res, apiError('bad_request', 'nothing to apply: send a resource, a list of resources or {kind: List, items}'));
        if (items.length > MAX_APPLY_ITEMS) return sendError(res, apiError('payload_too_large', `at most ${MAX_APPLY_ITEMS} resources per apply`));
        // Validate everything first: a batch with an invalid resource changes nothing.
        const results: ApplyItemResult[] = [];
        for (const [i, item] of items.entries()) {
          const r = validateResource(item);
          if (!r.ok) {
            const fields = r.errors.map((e) => ({ path: e.path, message: e.message, text: e.text }));
            const text = r.errors.map((e) => e.text).join('\n');
            const message = items.length > 1 ? `item ${i}: ${text}` : text;
            results.push({ ok: false, ...who(item), error: apiError('invalid', message, { fields }) });
          }
        }
        const firstInvalid = results.find((r) => !r.ok);
        if (firstInvalid && !firstInvalid.ok) {
          const fields = results.flatMap((r) => (r.ok ? [] : r.error.fields ?? []));
          return sendError(res, apiError('invalid', results.map((r) => (r.ok ? '' : r.error.message)).join('\n'), { fields }), { results });
        }
        for (const item of items) {
          const r: ApplyResult = await resources.apply(item, { dryRun });
          const w = who(item);
          if (r.ok) {
            const m = r.resource.metadata;
            results.push({
              ok: true, kind: r.resource.kind, apiVersion: r.resource.apiVersion, namespace: m.namespace ?? DEFAULT_NAMESPACE, name: m.name,
              action: r.action, resourceVersion: m.resourceVersion ?? '0', ...(dryRun ? { diff: r.diff } : {}), resource: r.resource,
            });
          } else if (r.code === 'conflict') {
            results.push({ ok: false, ...w, error: apiError('conflict', r.message, { current: r.current }) });
          } else if (r.code === 'quota_exceeded') {
            results.push({ ok: false, ...w, error: apiError('quota_exceeded', r.message) });
          } else {
            results.push({ ok: false, ...w, error: apiError('invalid', r.message, { fields: r.errors.map((e) => ({ path: e.path, message: e.message, text: e.text })) }) });
          }
        }
        if (opts.applyWarnings) {
          const applied = results.flatMap((r) => (r.ok ? [r] : []));
          const warned = await opts.applyWarnings(applied.map((r) => r.resource));
          applied.forEach((r, i) => {
            if (warned[i]?.length) r.warnings = warned[i];
          });
        }
        const failed = results.find((r) => !r.ok);
        if (failed && !failed.ok) return sendJson(res, API_ERRORS[failed.error.code], { results, error: failed.error });
        sendJson(res, 200, { dryRun, results });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/resources/:kind',
      async handle(req, res, params) {
        const def = kindOr404(res, params.kind ?? '');
        if (!def) return;
        const url = new URL(req.url ?? '/', 'http://localhost');
        const selectorText = url.searchParams.get('labelSelector') ?? '';
        const sel = parseLabelSelector(selectorText);
        if (!sel.ok) return sendError(res, apiError('bad_request', sel.error, { fields: [{ path: 'labelSelector', message: sel.error }] }));
        const namespace = url.searchParams.get('namespace') || undefined;
        const { items, revision } = await resources.list(def.kind, { ...(namespace ? { namespace } : {}), labelSelector: sel.selector });
        sendJson(res, 200, { apiVersion: def.apiVersion, kind: `${def.kind}List`, metadata: { resourceVersion: String(revision) }, items });
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/resources/:kind/:namespace/:name',
      async handle(_req, res, params) {
        const def = kindOr404(res, params.kind ?? '');
        if (!def) return;
        const key = { kind: def.kind, namespace: params.namespace ?? '', name: params.name ?? '' };
        const r = await resources.get(key);
        if (!r) return sendError(res, apiError('not_found', `${def.kind} ${key.namespace}/${key.name} not found`));
        sendJson(res, 200, r);
      },
    },
    {
      method: 'DELETE',
      pattern: '/api/v1/resources/:kind/:namespace/:name',
      async handle(req, res, params) {
        const def = kindOr404(res, params.kind ?? '');
        if (!def) return;
        const url = new URL(req.url ?? '/', 'http://localhost');
        const rv = url.searchParams.get('resourceVersion');
        const dryRun = url.searchParams.get('dryRun') === 'true';
        const r = await resources.delete(
          { kind: def.kind, namespace: params.namespace ?? '', name: params.name ?? '' },
          { ...(rv ? { expectResourceVersion: rv } : {}), dryRun },
        );
        if (r.ok) return sendJson(res, 200, { deleted: true, dryRun, resource: r.resource });
        if (r.code === 'conflict') return sendError(res, apiError('conflict', r.message, { current: r.current }));
        sendError(res, apiError('not_found', r.message));
      },
    },
  ];
}
