// Live tap: requests through the mesh as they happen, fanned in by the
// control plane from every proxy (GET /api/v1/tap, server-sent events). The
// stream runs only while this page shows it: leaving the page or pressing
// Stop closes it, and the proxies stop tapping.
import { h } from '../h.ts';
import { type VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Badge, Page } from '../components.ts';
import { ms } from '../format.ts';

/** One request: the caller's view on top, both proxies' views in client/server (src/cli/tap-join.ts). */
interface TapEvent { client: { duration_ms: number } | null; server: { duration_ms: number; status: number } | null; time: string; direction: string; method: string; authority: string; path: string; route: string | null; status: number; grpc_status: string; duration_ms: number; source_workload: string; destination_workload: string; destination_service: string; response_flags: string; proxy: string; upstream_host: string | null }

const MAX_ROWS = 300;

function hashParams(): URLSearchParams {
  const q = location.hash.indexOf('?');
  return new URLSearchParams(q >= 0 ? location.hash.slice(q + 1) : '');
}

export function Tap(): VNode {
  const init = hashParams();
  const [form, setForm] = useState({ service: init.get('service') ?? '', path: init.get('path') ?? '', method: init.get('method') ?? '', code: init.get('code') ?? '', route: init.get('route') ?? '' });
  const [running, setRunning] = useState<string | null>(null);
  const [events, setEvents] = useState<TapEvent[]>([]);
  const [info, setInfo] = useState<string>('');
  const [errors, setErrors] = useState<string[]>([]);
  const buf = useRef<TapEvent[]>([]);

  useEffect(() => {
    if (running === null) return undefined;
    buf.current = [];
    setEvents([]);
    setErrors([]);
    const es = new EventSource(running);
    let timer: number | undefined;
    const flush = (): void => {
      timer = undefined;
      setEvents([...buf.current]);
    };
    es.addEventListener('start', (e) => {
      const d = JSON.parse((e as MessageEvent<string>).data) as { proxies: string[] };
      setInfo(`tapping ${d.proxies.length} prox${d.proxies.length === 1 ? 'y' : 'ies'}`);
    });
    es.addEventListener('tap', (e) => {
      buf.current.unshift(JSON.parse((e as MessageEvent<string>).data) as TapEvent);
      if (buf.current.length > MAX_ROWS) buf.current.length = MAX_ROWS;
      timer ??= window.setTimeout(flush, 200);
    });
    es.addEventListener('dropped', (e) => setInfo((s) => `${s} · ${(JSON.parse((e as MessageEvent<string>).data) as { count: number }).count} dropped`));
    es.addEventListener('tap-error', (e) => setErrors((x) => [...x, (JSON.parse((e as MessageEvent<string>).data) as { message: string }).message].slice(-5)));
    es.onerror = () => setInfo((s) => (s.includes('reconnecting') ? s : `${s} · reconnecting`));
    return () => {
      es.close();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [running]);

  const start = (e: Event): void => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const k of ['service', 'path', 'method', 'code'] as const) if (form[k].trim() !== '') q.set(k, form[k].trim());
    setRunning(`/api/v1/tap?${q.toString()}`);
  };
  const field = (k: keyof typeof form, label: string, placeholder: string): VNode =>
    h('label', null, label, h('input', { name: k, value: form[k], placeholder, onInput: (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value }) }));
  const shown = form.route ? events.filter((e) => e.route === form.route) : events;
  return h(Page, { title: 'Live tap' },
    h('form', { class: 'filters', onSubmit: start },
      field('service', 'Service', 'reviews'),
      field('route', 'Route', 'default/reviews/rule-0…'),
      field('path', 'Path prefix', '/api'),
      field('method', 'Method', 'GET'),
      field('code', 'Status', '503'),
      running === null
        ? h('button', { type: 'submit', class: 'primary' }, 'Start')
        : [h('button', { type: 'submit' }, 'Restart'), h('button', { type: 'button', onClick: () => setRunning(null) }, 'Stop')]),
    h('p', { role: 'status', class: 'muted' }, running === null ? 'Stopped. Start a tap to watch requests (bodies are never captured; credentials are redacted).' : `${info} · ${shown.length} shown (newest first, at most ${MAX_ROWS})`),
    errors.map((e) => h('p', { class: 'alert', key: e }, e)),
    h('table', { class: 'table tap', 'aria-label': 'Tapped requests' },
      h('thead', null, h('tr', null, ['Time', 'Dir', 'From', 'To', 'Request', 'Route', 'Status', 'Latency'].map((c) => h('th', { scope: 'col', key: c }, c)))),
      h('tbody', null, shown.length === 0
        ? h('tr', null, h('td', { colSpan: 8, class: 'empty' }, running ? 'waiting for requests…' : '–'))
        : shown.map((e, i) => h('tr', { key: `${e.time}-${e.proxy}-${i}`, class: 'tap-row' },
          h('td', null, new Date(e.time).toLocaleTimeString()),
          h('td', { title: 'which proxies saw it: out = the caller\'s, in = the callee\'s' }, e.client && e.server ? 'out+in' : e.client ? 'out' : 'in'),
          h('td', null, e.source_workload),
          h('td', null, e.destination_workload || e.destination_service),
          h('td', null, h('code', null, `${e.method} ${e.authority}${e.path}`)),
          h('td', null, e.route ?? '–'),
          h('td', null, h(Badge, { tone: e.status >= 500 ? 'bad' : e.status >= 400 ? 'warn' : 'good' }, String(e.status)), e.response_flags && e.response_flags !== '-' ? ` ${e.response_flags}` : ''),
          h('td', { class: 'num', title: e.client && e.server ? `callee ${ms(e.server.duration_ms)}` : '' }, ms(e.duration_ms)))))));
}
