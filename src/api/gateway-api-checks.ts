// Cross-field rules of the Gateway API (the upstream CRDs state these as CEL
// `x-kubernetes-validations`), checked after the structural schema passed.
import { parseDuration } from './schema-common.ts';
import type { PathSegment } from './schema-check.ts';
import type { HTTPRouteSpec, GRPCRouteSpec, HTTPRouteFilter, HTTPHeaderFilter, GatewaySpec, TCPRouteSpec } from './gateway-api.ts';
import { linearRegexError } from '../lib/linear-regex.ts';

export type Report = (segments: PathSegment[], message: string) => void;

const FILTER_FIELD: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
};

/** RegularExpression values become Envoy safe_regex matchers, which the
 * proxy runs with linear-time semantics: refuse here what it would refuse. */
function checkRegex(value: string, at: PathSegment[], report: Report): void {
  const e = linearRegexError(value);
  if (e !== null) report(at, e);
}

function checkHeaderFilter(f: HTTPHeaderFilter, at: PathSegment[], report: Report): void {
  for (const list of ['set', 'add'] as const) {
    const seen = new Set<string>();
    (f[list] ?? []).forEach((h, i) => {
      const key = h.name.toLowerCase();
      if (seen.has(key)) report([...at, list, i, 'name'], `duplicate header name "${h.name}"`);
      seen.add(key);
    });
  }
}

function checkFilters(filters: HTTPRouteFilter[] | undefined, at: PathSegment[], report: Report, pathMatchTypes: Set<string>): void {
  (filters ?? []).forEach((f, i) => {
    const here = [...at, i];
    const wanted = FILTER_FIELD[f.type];
    for (const field of Object.values(FILTER_FIELD)) {
      const present = (f as Record<string, unknown>)[field] !== undefined;
      if (field === wanted && !present) report([...here, field], `is required when type is ${f.type}`);
      if (field !== wanted && present) report([...here, field], `must not be set when type is ${f.type}`);
    }
    if (f.requestHeaderModifier) checkHeaderFilter(f.requestHeaderModifier, [...here, 'requestHeaderModifier'], report);
    if (f.responseHeaderModifier) checkHeaderFilter(f.responseHeaderModifier, [...here, 'responseHeaderModifier'], report);
    const mirror = f.requestMirror;
    if (mirror) {
      if (mirror.percent !== undefined && mirror.fraction !== undefined) report([...here, 'requestMirror'], 'percent and fraction cannot both be set');
      if (mirror.fraction && mirror.fraction.numerator > (mirror.fraction.denominator ?? 100)) {
        report([...here, 'requestMirror', 'fraction', 'numerator'], 'must be <= denominator');
      }
      checkServicePort(mirror.backendRef, [...here, 'requestMirror', 'backendRef'], report);
    }
    for (const key of ['requestRedirect', 'urlRewrite'] as const) {
      const p = f[key]?.path;
      if (!p) continue;
      const pAt = [...here, key, 'path'];
      if (p.type === 'ReplaceFullPath') {
        if (p.replaceFullPath === undefined) report([...pAt, 'replaceFullPath'], 'is required when type is ReplaceFullPath');
        if (p.replacePrefixMatch !== undefined) report([...pAt, 'replacePrefixMatch'], 'must not be set when type is ReplaceFullPath');
      } else {
        if (p.replacePrefixMatch === undefined) report([...pAt, 'replacePrefixMatch'], 'is required when type is ReplacePrefixMatch');
        if (p.replaceFullPath !== undefined) report([...pAt, 'replaceFullPath'], 'must not be set when type is ReplacePrefixMatch');
        if ([...pathMatchTypes].some((t) => t !== 'PathPrefix')) report([...pAt, 'type'], 'ReplacePrefixMatch needs every match of the rule to be a PathPrefix match');
      }
    }
  });
  const types = (filters ?? []).map((f) => f.type);
  if (types.includes('RequestRedirect') && types.includes('URLRewrite')) report(at, 'RequestRedirect and URLRewrite cannot be used together');
  for (const once of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']) {
    if (types.filter((t) => t === once).length > 1) report(at, `${once} may appear at most once`);
  }
}

/** Gateway API: a backend that is a Service must name its port. */
function checkServicePort(ref: { group?: string; kind?: string; port?: number }, at: PathSegment[], report: Report): void {
  if ((ref.kind ?? 'Service') === 'Service' && (ref.group ?? '') !== 'gateway.networking.k8s.io' && ref.port === undefined) {
    report([...at, 'port'], 'is required when the backend is a Service');
  }
}

/** Gateway API: rule names are unique within a route. */
function checkRuleNames(rules: { name?: string }[], report: Report): void {
  const seen = new Set<string>();
  rules.forEach((rule, r) => {
    if (rule.name === undefined) return;
    if (seen.has(rule.name)) report(['spec', 'rules', r, 'name'], `duplicate rule name "${rule.name}"`);
    seen.add(rule.name);
  });
}

/** Gateway API (CEL on the route): at most 128 matches across all rules. */
const MAX_TOTAL_MATCHES = 128;

export function checkHTTPRoute(spec: HTTPRouteSpec, report: Report): void {
  checkRuleNames(spec.rules ?? [], report);
  const total = (spec.rules ?? []).reduce((n, rule) => n + (rule.matches?.length ?? 0), 0);
  if (total > MAX_TOTAL_MATCHES) report(['spec', 'rules'], `must have at most ${MAX_TOTAL_MATCHES} matches in total across rules (has ${total})`);
  (spec.rules ?? []).forEach((rule, r) => {
    const at: PathSegment[] = ['spec', 'rules', r];
    const pathTypes = new Set<string>();
    (rule.matches ?? []).forEach((m, i) => {
      const mAt = [...at, 'matches', i];
      if (m.path) {
        const type = m.path.type ?? 'PathPrefix';
        const value = m.path.value ?? '/';
        pathTypes.add(type);
        if (type === 'RegularExpression') checkRegex(value, [...mAt, 'path', 'value'], report);
        else if (!value.startsWith('/')) report([...mAt, 'path', 'value'], 'must be an absolute path starting with "/"');
        else if (/\/\/|\/\.\.?(\/|$)|[?#]/.test(value)) report([...mAt, 'path', 'value'], 'must not contain "//", "/./", "/../", "?" or "#"');
      } else {
        pathTypes.add('PathPrefix');
      }
      for (const list of ['headers', 'queryParams'] as const) {
        const seen = new Set<string>();
        (m[list] ?? []).forEach((h, j) => {
          const key = list === 'headers' ? h.name.toLowerCase() : h.name;
          if (seen.has(key)) report([...mAt, list, j, 'name'], `duplicate name "${h.name}"`);
          seen.add(key);
          if (h.type === 'RegularExpression') checkRegex(h.value, [...mAt, list, j, 'value'], report);
        });
      }
    });
    checkFilters(rule.filters, [...at, 'filters'], report, pathTypes);
    (rule.backendRefs ?? []).forEach((b, i) => {
      checkServicePort(b, [...at, 'backendRefs', i], report);
      checkFilters(b.filters, [...at, 'backendRefs', i, 'filters'], report, pathTypes);
    });
    const t = rule.timeouts;
    if (t?.request !== undefined && t.backendRequest !== undefined) {
      const req = parseDuration(t.request);
      const back = parseDuration(t.backendRequest);
      if (req !== undefined && back !== undefined && req !== 0 && back > req) {
        report([...at, 'timeouts', 'backendRequest'], `must be <= timeouts.request (${t.request})`);
      }
    }
  });
}

const GRPC_SERVICE = /^\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

export function checkGRPCRoute(spec: GRPCRouteSpec, report: Report): void {
  checkRuleNames(spec.rules ?? [], report);
  const total = (spec.rules ?? []).reduce((n, rule) => n + (rule.matches?.length ?? 0), 0);
  if (total > MAX_TOTAL_MATCHES) report(['spec', 'rules'], `must have at most ${MAX_TOTAL_MATCHES} matches in total across rules (has ${total})`);
  (spec.rules ?? []).forEach((rule, r) => {
    const at: PathSegment[] = ['spec', 'rules', r];
    (rule.matches ?? []).forEach((m, i) => {
      const mm = m.method;
      if (!mm) return;
      const mAt = [...at, 'matches', i, 'method'];
      if (mm.service === undefined && mm.method === undefined) report(mAt, 'one or both of service and method must be set');
      if ((mm.type ?? 'Exact') === 'Exact') {
        if (mm.service !== undefined && !GRPC_SERVICE.test(mm.service)) report([...mAt, 'service'], 'must be a fully qualified gRPC service name such as helloworld.Greeter');
        if (mm.method !== undefined && !GRPC_METHOD.test(mm.method)) report([...mAt, 'method'], 'must be a gRPC method name such as SayHello');
      } else {
        if (mm.service !== undefined) checkRegex(mm.service, [...mAt, 'service'], report);
        if (mm.method !== undefined) checkRegex(mm.method, [...mAt, 'method'], report);
      }
      (m.headers ?? []).forEach((h, j) => {
        if (h.type === 'RegularExpression') checkRegex(h.value, [...at, 'matches', i, 'headers', j, 'value'], report);
      });
    });
    checkFilters(rule.filters as HTTPRouteFilter[] | undefined, [...at, 'filters'], report, new Set());
    (rule.backendRefs ?? []).forEach((b, i) => checkServicePort(b, [...at, 'backendRefs', i], report));
  });
}

export function checkTCPRoute(spec: TCPRouteSpec, report: Report): void {
  checkRuleNames(spec.rules, report);
  spec.rules.forEach((rule, r) => rule.backendRefs.forEach((b, i) => checkServicePort(b, ['spec', 'rules', r, 'backendRefs', i], report)));
}

export function checkGateway(spec: GatewaySpec, report: Report): void {
  const names = new Set<string>();
  spec.listeners.forEach((l, i) => {
    if (names.has(l.name)) report(['spec', 'listeners', i, 'name'], `duplicate listener name "${l.name}"`);
    names.add(l.name);
    if ((l.protocol === 'HTTPS' || l.protocol === 'TLS') && !l.tls) report(['spec', 'listeners', i, 'tls'], `is required when protocol is ${l.protocol}`);
  });
}
