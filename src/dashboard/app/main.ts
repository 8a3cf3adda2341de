// The Trellis dashboard: a single-page app served by the control plane
// (src/dashboard/serve.ts). Pages are hash routes:
//
//   #/                      services overview        #/topology   the graph
//   #/service/<ns>/<name>   one service              #/proxies    xDS sync
//   #/proxy/<node id>       one proxy's config
//   #/tap?service=...       live requests            #/config[/<Kind>[/<ns>/<name>]]
//
// Keys: 1–5 switch pages (outside text fields); every control is focusable.
import { h } from './h.ts';
import { render, type VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { MetricsProvider } from './metrics-store.ts';
import { Overview } from './pages/overview.ts';
import { Topology } from './pages/topology.ts';
import { ServicePage } from './pages/service.ts';
import { Proxies } from './pages/proxies.ts';
import { ProxyPage } from './pages/proxy.ts';
import { Tap } from './pages/tap.ts';
import { Config } from './pages/config.ts';
import { Login, type WhoAmI } from './pages/login.ts';
import { useFetch } from './api.ts';
import './styles.css';

const NAV = [
  { hash: '#/', label: 'Services', page: 'overview' },
  { hash: '#/topology', label: 'Topology', page: 'topology' },
  { hash: '#/proxies', label: 'Proxies', page: 'proxies' },
  { hash: '#/tap', label: 'Live tap', page: 'tap' },
  { hash: '#/config', label: 'Config', page: 'config' },
] as const;

export type Route =
  | { page: 'overview' }
  | { page: 'topology' }
  | { page: 'proxies' }
  | { page: 'proxy'; nodeId: string }
  | { page: 'tap' }
  | { page: 'service'; namespace: string; name: string }
  | { page: 'config'; kind?: string; namespace?: string; name?: string }
  | { page: 'missing'; hash: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').split('?')[0] ?? '';
  const parts = path.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  const [head, a, b, c] = parts;
  if (head === undefined) return { page: 'overview' };
  if (head === 'topology' && parts.length === 1) return { page: 'topology' };
  if (head === 'proxies' && parts.length === 1) return { page: 'proxies' };
  if (head === 'proxy' && a && parts.length === 2) return { page: 'proxy', nodeId: a };
  if (head === 'tap' && parts.length === 1) return { page: 'tap' };
  if (head === 'service' && a && b && parts.length === 3) return { page: 'service', namespace: a, name: b };
  if (head === 'service' && a && parts.length === 2) return { page: 'service', namespace: 'default', name: a };
  if (head === 'config' && parts.length <= 4) return { page: 'config', ...(a ? { kind: a } : {}), ...(b ? { namespace: b } : {}), ...(c ? { name: c } : {}) };
  return { page: 'missing', hash };
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = (): void => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App(): VNode {
  const hash = useHash();
  const route = parseRoute(hash);
  useEffect(() => {
    // Move focus to the new page's heading, so keyboard and screen-reader users land on it.
    (document.getElementById('page-title') as HTMLElement | null)?.focus({ preventScroll: true });
  }, [hash.split('?')[0]]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)) return;
      const i = Number(e.key) - 1;
      const item = NAV[i];
      if (item) location.hash = item.hash;
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  const who = useFetch<WhoAmI>('/api/v1/auth/whoami');
  if (who.data && who.data.authRequired && !who.data.authenticated) return h('main', { id: 'main' }, h(Login, null));
  let page: VNode;
  switch (route.page) {
    case 'overview': page = h(Overview, null); break;
    case 'topology': page = h(Topology, null); break;
    case 'proxies': page = h(Proxies, null); break;
    case 'proxy': page = h(ProxyPage, { nodeId: route.nodeId, key: route.nodeId }); break;
    case 'tap': page = h(Tap, { key: hash }); break;
    case 'service': page = h(ServicePage, { namespace: route.namespace, name: route.name, key: `${route.namespace}/${route.name}` }); break;
    case 'config': page = h(Config, { kind: route.kind, namespace: route.namespace, name: route.name }); break;
    default: page = h('section', { class: 'page' }, h('h1', { id: 'page-title', tabIndex: -1 }, 'Not found'), h('p', null, `Nothing at ${route.hash}. `, h('a', { href: '#/' }, 'Back to services')));
  }
  const active = route.page === 'service' ? 'overview' : route.page === 'proxy' ? 'proxies' : route.page;
  return h(MetricsProvider, null,
    h('a', { class: 'skip', href: '#main', onClick: (e: Event) => { e.preventDefault(); document.getElementById('page-title')?.focus(); } }, 'Skip to content'),
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/' }, 'Trellis'),
      h('nav', { 'aria-label': 'Pages' }, h('ul', null, NAV.map((n, i) => h('li', { key: n.hash },
        h('a', { href: n.hash, class: n.page === active ? 'current' : '', 'aria-current': n.page === active ? 'page' : undefined, title: `${n.label} (key ${i + 1})` }, n.label)))))),
    h('main', { id: 'main' }, page));
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(h(App, null), root);
}
