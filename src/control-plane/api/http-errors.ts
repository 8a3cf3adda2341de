// The API's error catalogue and JSON helpers. Every error body is
// `{error: {code, message, fields?: [{path, message}]}}` with a stable code.
import type { ServerResponse } from 'node:http';

export const API_ERRORS = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  // A per-kind object count or size limit (resources/service.ts), as Kubernetes' ResourceQuota: 403.
  quota_exceeded: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  invalid: 422,
  internal: 500,
  unavailable: 503,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export interface ApiFieldError {
  path: string;
  message: string;
  /** The full line: `[file: ]Kind ns/name: path: message`. */
  text?: string;
}

export interface ApiError {
  code: ApiErrorCode;
  message: string;
  fields?: ApiFieldError[];
  /** For conflicts: the object as it is now. */
  current?: unknown;
}

export function apiError(code: ApiErrorCode, message: string, extra: Omit<ApiError, 'code' | 'message'> = {}): ApiError {
  return { code, message, ...extra };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sendError(res: ServerResponse, err: ApiError, extraBody: Record<string, unknown> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, API_ERRORS[err.code], { ...extraBody, error: err });
}
