// A registered workload: one running instance (process, pod) that its
// sidecar announced to the control plane. Stored as JSON under
// `/trellis/registry/workloads/<namespace>/<name>`, attached to a lease that
// the workload's heartbeats renew (registration.ts).
import { isIP } from 'node:net';
import { checkLabelValue, checkQualifiedName } from '../../api/validate.ts';

export const REGISTRY_PREFIX = '/trellis/registry/';
export const WORKLOADS_PREFIX = `${REGISTRY_PREFIX}workloads/`;

export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';
export const PORT_PROTOCOLS: readonly PortProtocol[] = ['http', 'http2', 'grpc', 'tcp'];

export interface WorkloadPort {
  port: number;
  protocol: PortProtocol;
  name?: string;
  /** Where the workload's sidecar accepts inbound traffic for `port`
   * (explicit mode, `trellis run`); EDS then dials this port. */
  proxyPort?: number;
}

export interface Locality {
  region: string;
  zone: string;
}

export interface Workload {
  name: string;
  namespace: string;
  serviceAccount: string;
  /** IP address or DNS name where the workload's sidecar accepts inbound traffic. */
  address: string;
  ports: WorkloadPort[];
  labels: Record<string, string>;
  locality: Locality;
  /** ISO time of (the latest) registration. */
  registeredAt: string;
  /** The bootstrap token the workload joined with, if any. */
  joinToken?: string;
}

/** What a caller hands to register(): defaults filled in by validateWorkload. */
export interface WorkloadInput {
  name: string;
  namespace?: string;
  serviceAccount?: string;
  address: string;
  ports?: Array<{ port: number; protocol?: PortProtocol; name?: string; proxyPort?: number }>;
  labels?: Record<string, string>;
  locality?: Partial<Locality>;
  joinToken?: string;
}

export interface WorkloadFieldError {
  field: string;
  reason: string;
}

export type ValidateWorkloadResult = { ok: true; workload: Workload } | { ok: false; errors: WorkloadFieldError[] };

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function workloadKey(namespace: string, name: string): string {
  return `${WORKLOADS_PREFIX}${namespace}/${name}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Check and normalize (defaults: namespace "default", serviceAccount "default", protocol "http"). */
export function validateWorkload(input: unknown, now: Date = new Date()): ValidateWorkloadResult {
  const errors: WorkloadFieldError[] = [];
  const err = (field: string, reason: string) => errors.push({ field, reason });
  if (!isRecord(input)) return { ok: false, errors: [{ field: '', reason: 'workload must be an object' }] };
  const str = (field: string, v: unknown, re: RegExp, max: number, what: string): string => {
    if (typeof v !== 'string' || v.length === 0) err(field, 'required, a non-empty string');
    else if (v.length > max) err(field, `must be at most ${max} characters`);
    else if (!re.test(v)) err(field, `must be ${what}`);
    return typeof v === 'string' ? v : '';
  };
  const name = str('name', input.name, DNS1123_SUBDOMAIN, 253, "a DNS-1123 subdomain (a-z, 0-9, '-', '.')");
  const namespace = str('namespace', input.namespace ?? 'default', DNS1123_LABEL, 63, "a DNS-1123 label (a-z, 0-9, '-')");
  const serviceAccount = str('serviceAccount', input.serviceAccount ?? 'default', DNS1123_SUBDOMAIN, 253, 'a DNS-1123 subdomain');
  let address = '';
  if (typeof input.address !== 'string' || input.address.length === 0) err('address', 'required, an IP address or DNS name');
  else if (isIP(input.address) === 0 && !(input.address.length <= 253 && DNS1123_SUBDOMAIN.test(input.address.toLowerCase()))) err('address', `not an IP address or DNS name: ${JSON.stringify(input.address)}`);
  else address = input.address;

  const ports: WorkloadPort[] = [];
  if (input.ports !== undefined && !Array.isArray(input.ports)) err('ports', 'must be a list');
  else if (Array.isArray(input.ports)) {
    if (input.ports.length > 64) err('ports', 'at most 64 ports');
    const seenPorts = new Set<number>();
    const seenNames = new Set<string>();
    input.ports.forEach((p: unknown, i: number) => {
      const f = `ports[${i}]`;
      if (!isRecord(p)) return err(f, 'must be an object');
      if (typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return err(`${f}.port`, 'must be an integer 1-65535');
      if (seenPorts.has(p.port)) return err(`${f}.port`, `duplicate port ${p.port}`);
      seenPorts.add(p.port);
      const protocol = p.protocol ?? 'http';
      if (typeof protocol !== 'string' || !(PORT_PROTOCOLS as readonly string[]).includes(protocol)) return err(`${f}.protocol`, `must be one of ${PORT_PROTOCOLS.join(', ')}`);
      const out: WorkloadPort = { port: p.port, protocol: protocol as PortProtocol };
      if (p.name !== undefined) {
        if (typeof p.name !== 'string' || p.name.length > 63 || !DNS1123_LABEL.test(p.name)) return err(`${f}.name`, 'must be a DNS-1123 label of at most 63 characters');
        if (seenNames.has(p.name)) return err(`${f}.name`, `duplicate port name ${p.name}`);
        seenNames.add(p.name);
        out.name = p.name;
      }
      if (p.proxyPort !== undefined) {
        if (typeof p.proxyPort !== 'number' || !Number.isInteger(p.proxyPort) || p.proxyPort < 1 || p.proxyPort > 65535) return err(`${f}.proxyPort`, 'must be an integer 1-65535');
        out.proxyPort = p.proxyPort;
      }
      ports.push(out);
    });
  }

  const labels: Record<string, string> = {};
  if (input.labels !== undefined && !isRecord(input.labels)) err('labels', 'must be a map of strings');
  else if (isRecord(input.labels)) {
    for (const [k, v] of Object.entries(input.labels)) {
      const bk = checkQualifiedName(k);
      if (bk) err(`labels.${k}`, `key ${bk}`);
      else if (typeof v !== 'string') err(`labels.${k}`, 'value must be a string');
      else {
        const bv = checkLabelValue(v);
        if (bv) err(`labels.${k}`, `value ${bv}`);
        else labels[k] = v;
      }
    }
  }

  const locality: Locality = { region: '', zone: '' };
  if (input.locality !== undefined && !isRecord(input.locality)) err('locality', 'must be an object with region and zone');
  else if (isRecord(input.locality)) {
    for (const k of ['region', 'zone'] as const) {
      const v = input.locality[k];
      if (v === undefined) continue;
      if (typeof v !== 'string' || v.length > 128) err(`locality.${k}`, 'must be a string of at most 128 characters');
      else locality[k] = v;
    }
  }

  let joinToken: string | undefined;
  if (input.joinToken !== undefined) {
    if (typeof input.joinToken !== 'string' || input.joinToken.length === 0 || input.joinToken.length > 1024) err('joinToken', 'must be a non-empty string of at most 1024 characters');
    else joinToken = input.joinToken;
  }

  if (errors.length > 0) return { ok: false, errors };
  const workload: Workload = { name, namespace, serviceAccount, address, ports, labels, locality, registeredAt: now.toISOString() };
  if (joinToken !== undefined) workload.joinToken = joinToken;
  return { ok: true, workload };
}

/** Parse a stored workload (null if the value is not one: logged by the caller, never thrown). */
export function parseStoredWorkload(value: string): Workload | null {
  try {
    const v = JSON.parse(value) as Workload;
    return isRecord(v) && typeof v.name === 'string' && typeof v.namespace === 'string' && typeof v.address === 'string' && Array.isArray(v.ports) ? v : null;
  } catch {
    return null;
  }
}
