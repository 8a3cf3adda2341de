// Where resources live in the store: /trellis/resources/<Kind>/<namespace>/<name>.
import type { ResourceKey } from '../../api/types.ts';

export const RESOURCES_PREFIX = '/trellis/resources/';

export function resourceKey(k: ResourceKey): string {
  return `${RESOURCES_PREFIX}${k.kind}/${k.namespace}/${k.name}`;
}

export function kindPrefix(kind: string, namespace?: string): string {
  return namespace === undefined ? `${RESOURCES_PREFIX}${kind}/` : `${RESOURCES_PREFIX}${kind}/${namespace}/`;
}

export function parseResourceKey(key: string): ResourceKey | undefined {
  if (!key.startsWith(RESOURCES_PREFIX)) return undefined;
  const [kind, namespace, name, ...rest] = key.slice(RESOURCES_PREFIX.length).split('/');
  if (!kind || !namespace || !name || rest.length > 0) return undefined;
  return { kind, namespace, name };
}
