// Config: browse resources as YAML, edit, review the server's dry-run diff,
// then apply. Validation errors come back with field paths and are shown on
// the line of the field they name.
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { stringify } from 'yaml';
import { api, useFetch, useWatchedKind, type FieldError, type KindInfo, type Resource } from '../api.ts';
import { parseYamlDocuments } from '../../../api/yaml-documents.ts';
import { parseFieldPath } from '../field-path.ts';
import { Page } from '../components.ts';

interface LineNote { line: number; text: string }
interface ApplyResult { ok: boolean; kind: string; namespace: string; name: string; action?: string; diff?: string }

const KEEP_METADATA = ['name', 'namespace', 'labels', 'annotations'];

/** What a person edits: no status, no server-set metadata. */
export function editable(r: Resource): string {
  const metadata: Record<string, unknown> = {};
  for (const k of KEEP_METADATA) if (r.metadata[k] !== undefined) metadata[k] = r.metadata[k];
  return stringify({ apiVersion: r.apiVersion, kind: r.kind, metadata, spec: r.spec ?? {} }, { lineWidth: 0 });
}

/** Server field errors -> lines of `text` (the nearest existing ancestor when the field is absent). */
export function notesFor(text: string, fields: readonly FieldError[], fallback: string): LineNote[] {
  const parsed = parseYamlDocuments(text, 'editor');
  const doc = parsed.ok ? parsed.documents[0] : undefined;
  if (fields.length === 0) return [{ line: doc?.line ?? 1, text: fallback }];
  return fields.map((f) => ({ line: doc?.lineOf(parseFieldPath(f.path)) ?? 1, text: `${f.path}: ${f.message}` }));
}

function Editor(p: { value: string; onChange: (v: string) => void; notes: LineNote[] }): VNode {
  const area = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const side = useRef<HTMLDivElement>(null);
  const lines = p.value.split('\n').length;
  const byLine = new Map<number, string[]>();
  for (const n of p.notes) byLine.set(n.line, [...(byLine.get(n.line) ?? []), n.text]);
  const sync = (): void => {
    const top = area.current?.scrollTop ?? 0;
    if (gutter.current) gutter.current.scrollTop = top;
    if (side.current) side.current.scrollTop = top;
  };
  return h('div', { class: 'editor' },
    h('div', { class: 'gutter', ref: gutter, 'aria-hidden': 'true' }, Array.from({ length: lines }, (_, i) => h('div', { key: i, class: byLine.has(i + 1) ? 'err' : '' }, String(i + 1)))),
    h('textarea', {
      ref: area,
      value: p.value,
      spellcheck: false,
      wrap: 'off',
      'aria-label': 'Resource YAML',
      'aria-describedby': 'field-errors',
      onInput: (e: Event) => p.onChange((e.target as HTMLTextAreaElement).value),
      onScroll: sync,
      rows: Math.min(Math.max(lines + 2, 16), 40),
    }),
    h('div', { class: 'notes', ref: side }, Array.from({ length: lines }, (_, i) => {
      const msgs = byLine.get(i + 1);
      return h('div', { key: i, class: msgs ? 'field-error' : '', 'data-line': i + 1 }, msgs ? `◀ ${msgs.join('; ')}` : '\u00a0');
    })));
}

function Diff(p: { text: string }): VNode {
  return h('pre', { class: 'diff', 'aria-label': 'Dry-run diff' }, p.text.split('\n').map((l, i) => h('div', { key: i, class: l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : l.startsWith('@@') ? 'hunk' : '' }, l || '\u00a0')));
}

export function Config(p: { kind?: string | undefined; namespace?: string | undefined; name?: string | undefined }): VNode {
  const kinds = useFetch<{ kinds: KindInfo[] }>('/api/v1/kinds');
  const kind = p.kind ?? 'HTTPRoute';
  const list = useWatchedKind(kind);
  const selected = p.name ? list.items.find((r) => r.metadata.name === p.name && (r.metadata.namespace ?? 'default') === (p.namespace ?? 'default')) : undefined;
  const [text, setText] = useState('');
  const [loadedFor, setLoadedFor] = useState('');
  const [notes, setNotes] = useState<LineNote[]>([]);
  const [review, setReview] = useState<ApplyResult[] | null>(null);
  const [message, setMessage] = useState<{ tone: 'good' | 'bad'; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  const key = `${kind}/${p.namespace ?? ''}/${p.name ?? ''}`;
  useEffect(() => {
    if (loadedFor === key) return;
    if (p.name && !selected) return; // wait for the watch
    setLoadedFor(key);
    setText(selected ? editable(selected) : `apiVersion: ${kinds.data?.kinds.find((k) => k.kind === kind)?.apiVersion ?? ''}\nkind: ${kind}\nmetadata:\n  name: \n  namespace: default\nspec: {}\n`);
    setNotes([]);
    setReview(null);
    setMessage(null);
  }, [key, selected, kinds.data]);

  const send = async (dryRun: boolean): Promise<void> => {
    setBusy(true);
    setMessage(null);
    const parsed = parseYamlDocuments(text, 'editor');
    if (!parsed.ok) {
      const m = /:(\d+):\d+: (.*)$/.exec(parsed.error);
      setNotes([{ line: m ? Number(m[1]) : 1, text: m ? m[2]! : parsed.error }]);
      setReview(null);
      setMessage({ tone: 'bad', text: parsed.error });
      setBusy(false);
      return;
    }
    const r = await api<{ results: ApplyResult[] }>(`/api/v1/apply${dryRun ? '?dryRun=true' : ''}`, { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: text });
    setBusy(false);
    if (!r.ok) {
      setNotes(notesFor(text, r.error.fields ?? [], r.error.message));
      setReview(null);
      setMessage({ tone: 'bad', text: `${r.error.code}: ${r.error.message}` });
      return;
    }
    setNotes([]);
    if (dryRun) setReview(r.value.results);
    else {
      setReview(null);
      setMessage({ tone: 'good', text: r.value.results.map((x) => `${x.kind} ${x.namespace}/${x.name} ${x.action ?? 'applied'}`).join('; ') });
    }
  };

  const items = [...list.items].sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  return h(Page, { title: 'Config' },
    h('div', { class: 'config' },
      h('nav', { class: 'resources', 'aria-label': 'Resources' },
        h('label', null, 'Kind ', h('select', { value: kind, onChange: (e: Event) => (location.hash = `#/config/${(e.target as HTMLSelectElement).value}`) },
          (kinds.data?.kinds ?? [{ kind }]).map((k) => h('option', { key: k.kind, value: k.kind }, k.kind)))),
        h('ul', null, items.map((r) => {
          const ns = r.metadata.namespace ?? 'default';
          const cur = r === selected;
          return h('li', { key: `${ns}/${r.metadata.name}` }, h('a', { href: `#/config/${kind}/${ns}/${r.metadata.name}`, 'aria-current': cur ? 'page' : undefined, class: cur ? 'current' : '' }, `${ns}/${r.metadata.name}`));
        }), items.length === 0 ? h('li', { class: 'muted' }, list.ready ? 'none' : 'loading…') : null),
        h('a', { href: `#/config/${kind}`, class: 'button' }, `New ${kind}`)),
      h('div', { class: 'edit' },
        h(Editor, { value: text, onChange: (v) => { setText(v); setReview(null); }, notes }),
        h('div', { id: 'field-errors', class: 'field-errors', role: notes.length ? 'alert' : undefined }, notes.map((n) => h('div', { key: `${n.line}-${n.text}` }, `line ${n.line}: ${n.text}`))),
        h('div', { class: 'buttons' },
          h('button', { type: 'button', class: 'primary', disabled: busy, onClick: () => void send(true) }, 'Review changes (dry run)'),
          review ? h('button', { type: 'button', class: 'danger', disabled: busy, onClick: () => void send(false) }, 'Apply') : null),
        message ? h('p', { class: `message ${message.tone}`, role: 'status' }, message.text) : null,
        review ? h('div', { class: 'review' }, review.map((x) => h('div', { key: `${x.kind}/${x.name}` },
          h('h3', null, `${x.kind} ${x.namespace}/${x.name}: ${x.action === 'unchanged' ? 'no change' : `would be ${x.action}`}`),
          x.diff ? h(Diff, { text: x.diff }) : null))) : null)));
}
