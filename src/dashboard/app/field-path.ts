// The API's field paths (`spec.rules[0].backendRefs[1].weight`, odd keys
// quoted: `metadata.labels["app.kubernetes.io/name"]`) back to segments, so
// an error can be placed on its YAML line (src/api/yaml-documents.ts lineOf).
export type Segment = string | number;

export function parseFieldPath(path: string): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  while (i < path.length) {
    const c = path[i];
    if (c === '.') {
      i++;
      continue;
    }
    if (c === '[') {
      const close = path[i + 1] === '"' ? path.indexOf('"]', i + 2) + 1 : path.indexOf(']', i);
      if (close <= 0) break;
      const inner = path.slice(i + 1, close);
      if (/^\d+$/.test(inner)) out.push(Number(inner));
      else {
        try {
          out.push(JSON.parse(inner) as string);
        } catch {
          out.push(inner);
        }
      }
      i = close + 1;
      continue;
    }
    let j = i;
    while (j < path.length && path[j] !== '.' && path[j] !== '[') j++;
    out.push(path.slice(i, j));
    i = j;
  }
  return out;
}
