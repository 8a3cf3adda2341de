// Multi-document YAML for `trellis apply -f`: each document with where it
// starts and a way to find the line of any field inside it, so errors can
// read `reviews.yaml:14: HTTPRoute default/reviews: spec.rules[0]...`.
import { parseAllDocuments, isMap, isSeq, isNode, LineCounter, type Node } from 'yaml';
import type { PathSegment } from './schema-check.ts';

export interface YamlDocument {
  /** 0-based position of the document in the stream (empty documents skipped). */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
  value: unknown;
  /** 1-based line of the node at `segments`, or of its nearest existing ancestor. */
  lineOf(segments: readonly PathSegment[]): number | undefined;
}

export type ParseYamlResult = { ok: true; documents: YamlDocument[] } | { ok: false; error: string };

export function parseYamlDocuments(text: string, source = '<stdin>'): ParseYamlResult {
  const counter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: YamlDocument[] = [];
  for (const doc of list) {
    const firstError = doc.errors[0];
    if (firstError) {
      const pos = firstError.linePos?.[0];
      return { ok: false, error: `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: invalid YAML: ${firstError.message.split('\n')[0]}` };
    }
    const contents = doc.contents;
    if (contents === null || contents === undefined) continue;
    let value: unknown;
    try {
      // The yaml library throws past maxAliasCount (a "billion laughs" alias
      // bomb): the caller's mistake, not the server's.
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      return { ok: false, error: `${source}: invalid YAML: ${(err as Error).message}` };
    }
    if (value === null || value === undefined) continue;
    const lineAt = (node: Node): number | undefined => (node.range ? counter.linePos(node.range[0]).line : undefined);
    // A list document (`kind: List` or a bare sequence) is flattened by the caller.
    out.push({
      index: out.length,
      line: isNode(contents) ? (lineAt(contents) ?? 1) : 1,
      value,
      lineOf(segments) {
        let node: unknown = contents;
        let line = isNode(node) ? lineAt(node) : undefined;
        for (const seg of segments) {
          let next: unknown;
          if (isMap(node)) {
            const pair = node.items.find((p) => (isNode(p.key) ? (p.key as { value?: unknown }).value : p.key) === seg);
            if (!pair) break;
            if (isNode(pair.key)) line = lineAt(pair.key) ?? line;
            next = pair.value;
          } else if (isSeq(node) && typeof seg === 'number') {
            next = node.items[seg];
            if (isNode(next)) line = lineAt(next) ?? line;
          }
          if (!isNode(next)) break;
          node = next;
        }
        return line;
      },
    });
  }
  return { ok: true, documents: out };
}
