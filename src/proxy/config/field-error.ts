// Config errors as values: every problem names the resource and the field
// path, e.g. `listeners[0] (outbound): filterChains[1].filters[0].typedConfig:
// must be an object`. Parsers collect all problems of a resource rather than
// stopping at the first, so one round trip fixes a file.

export interface ResourceRef {
  /** Root path of the resource, e.g. `listeners[0]`. */
  readonly path: string;
  /** Its name once known, e.g. `outbound`. */
  readonly name?: string;
}

export interface FieldError {
  /** Full path from the document root: `listeners[0].filterChains[1].name`. */
  readonly path: string;
  readonly message: string;
  readonly resource?: ResourceRef;
}

export type Parsed<T> =
  | { readonly ok: true; readonly value: T; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly errors: readonly FieldError[]; readonly warnings: readonly string[] };

/** `listeners[0] (outbound): filterChains[1].name: required`. */
export function formatFieldError(e: FieldError): string {
  return formatAt(e.path, e.message, e.resource);
}

function formatAt(path: string, message: string, resource: ResourceRef | undefined): string {
  if (resource !== undefined && (path === resource.path || path.startsWith(`${resource.path}.`))) {
    const label = resource.name ? `${resource.path} (${resource.name})` : resource.path;
    const rest = path.slice(resource.path.length + 1);
    return rest ? `${label}: ${rest}: ${message}` : `${label}: ${message}`;
  }
  return path ? `${path}: ${message}` : message;
}

/** Collects errors and warnings while a document is parsed. */
export class Issues {
  readonly errors: FieldError[] = [];
  readonly warnings: string[] = [];
  /** The resource being parsed; attached to every error and warning. */
  resource: ResourceRef | undefined;

  error(path: string, message: string): void {
    this.errors.push(this.resource === undefined ? { path, message } : { path, message, resource: this.resource });
  }

  warn(path: string, message: string): void {
    this.warnings.push(formatAt(path, message, this.resource));
  }

  /** Run `fn` with `resource` as the current resource; returns its result. */
  within<T>(resource: ResourceRef, fn: () => T): T {
    const saved = this.resource;
    this.resource = resource;
    try {
      return fn();
    } finally {
      this.resource = saved;
    }
  }
}

export function joinPath(base: string, key: string): string {
  return base === '' ? key : `${base}.${key}`;
}
