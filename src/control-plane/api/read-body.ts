// Read a request body with a size bound; parse it as JSON or (multi-document) YAML.
import type { IncomingMessage } from 'node:http';
import { parseYamlDocuments } from '../../api/yaml-documents.ts';
import { apiError, type ApiError } from './http-errors.ts';

export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export type BodyResult = { ok: true; value: unknown } | { ok: false; error: ApiError };

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<{ ok: true; text: string } | { ok: false; error: ApiError }> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) return { ok: false, error: apiError('payload_too_large', `request body exceeds ${limit} bytes`) };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return { ok: false, error: apiError('payload_too_large', `request body exceeds ${limit} bytes`) };
    chunks.push(chunk);
  }
  return { ok: true, text: Buffer.concat(chunks).toString('utf8') };
}

/** JSON by default; YAML (several documents become a list) for application/yaml, text/yaml, application/x-yaml. */
export async function readStructuredBody(req: IncomingMessage): Promise<BodyResult> {
  const body = await readBody(req);
  if (!body.ok) return body;
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type.endsWith('yaml')) {
    const parsed = parseYamlDocuments(body.text, 'request body');
    if (!parsed.ok) return { ok: false, error: apiError('bad_request', parsed.error) };
    const values = parsed.documents.map((d) => d.value);
    return { ok: true, value: values.length === 1 ? values[0] : values };
  }
  if (type !== 'application/json' && type !== '') {
    return { ok: false, error: apiError('unsupported_media_type', `unsupported content-type "${type}": send application/json or application/yaml`) };
  }
  try {
    return { ok: true, value: JSON.parse(body.text) as unknown };
  } catch (err) {
    return { ok: false, error: apiError('bad_request', `request body is not valid JSON: ${(err as Error).message}`) };
  }
}
