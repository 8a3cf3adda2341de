// endpoint.v3.ClusterLoadAssignment -> LocalityEndpoints[] (EDS, or a
// cluster's inline loadAssignment).
import type { EndpointSpec, HealthStatus, LocalityEndpoints, Locality } from './types.ts';
import { FieldReader, describe } from './field-reader.ts';
import type { Issues } from './field-error.ts';
import { parseAddress, parseTrellisMetadata } from './envoy-common.ts';

export interface ParsedLoadAssignment {
  /** Empty for an inline assignment that did not name its cluster. */
  readonly clusterName: string;
  readonly localities: readonly LocalityEndpoints[];
}

const HEALTH: Record<string, HealthStatus> = {
  UNKNOWN: 'unknown',
  HEALTHY: 'healthy',
  UNHEALTHY: 'unhealthy',
  DRAINING: 'draining',
  TIMEOUT: 'unhealthy',
  DEGRADED: 'healthy',
};
const HEALTH_NUMBERS = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'];

export function readClusterLoadAssignment(json: unknown, path: string, issues: Issues, opts: { inline?: boolean } = {}): ParsedLoadAssignment | undefined {
  const r = FieldReader.of(json, path, issues);
  if (!r) return undefined;
  const before = issues.errors.length;
  const clusterName = r.str('clusterName', { required: !opts.inline }) ?? '';
  r.ignore('policy');
  const localities: LocalityEndpoints[] = [];
  for (const l of r.objList('endpoints')) {
    const loc = parseLocality(l.obj('locality'));
    parseTrellisMetadata(l.obj('metadata'));
    const weight = l.uint('loadBalancingWeight', { min: 1 }) ?? 1;
    const priority = l.uint('priority', { max: 128 }) ?? 0;
    l.ignore('proximity');
    const endpoints: EndpointSpec[] = [];
    for (const e of l.objList('lbEndpoints')) {
      const ep = parseLbEndpoint(e);
      if (ep) endpoints.push(ep);
    }
    l.done();
    localities.push({ locality: loc, priority, weight, endpoints });
  }
  r.done();
  if (issues.errors.length > before) return undefined;
  return { clusterName, localities };
}

export function parseLocality(r: FieldReader | undefined): Locality {
  if (!r) return { region: '', zone: '', subZone: '' };
  const loc = { region: r.str('region') ?? '', zone: r.str('zone') ?? '', subZone: r.str('subZone') ?? '' };
  r.done();
  return loc;
}

function parseLbEndpoint(r: FieldReader): EndpointSpec | undefined {
  const er = r.obj('endpoint', { required: true });
  const health = r.enumOf('healthStatus', HEALTH, HEALTH_NUMBERS) ?? 'unknown';
  const weight = r.uint('loadBalancingWeight', { min: 1 }) ?? 1;
  const meta = parseTrellisMetadata(r.obj('metadata'));
  r.done();
  let labels: Record<string, string> | undefined;
  if (meta) {
    labels = {};
    for (const [k, v] of Object.entries(meta)) {
      if (typeof v === 'string') labels[k] = v;
      else r.issues.error(`${r.at('metadata')}.filterMetadata.trellis.${k}`, `label values must be strings (got ${describe(v)})`);
    }
  }
  if (!er) return undefined;
  const addr = parseAddress(er.obj('address', { required: true }));
  er.ignore('hostname', 'healthCheckConfig');
  er.done();
  if (!addr) return undefined;
  return labels ? { address: addr.address, port: addr.port, weight, health, labels } : { address: addr.address, port: addr.port, weight, health };
}
