// The login gate: a control plane that requires credentials (bound beyond
// loopback, or --require-auth) gets an API token here once; the server sets
// an HttpOnly session cookie and a CSRF token that api() sends with writes.
import { h } from '../h.ts';
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api.ts';

export interface WhoAmI { authenticated: boolean; authRequired: boolean; name?: string; role?: string }

export function Login(): VNode {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const r = await api<{ role: string }>('/api/v1/auth/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: token.trim() }) });
    if (r.ok) location.reload();
    else setError(r.error.message);
  };
  return h('section', { class: 'page' },
    h('h1', { id: 'page-title', tabIndex: -1 }, 'Log in'),
    h('p', null, 'This control plane requires credentials. Paste an API token: the admin-token file in its data directory, or one from ', h('code', null, 'trellis token create NAME --role viewer'), '.'),
    h('form', { onSubmit: (e: Event) => void submit(e) },
      h('label', { for: 'token' }, 'API token '),
      h('input', { id: 'token', type: 'password', autocomplete: 'off', value: token, onInput: (e: Event) => setToken((e.target as HTMLInputElement).value) }),
      h('button', { type: 'submit' }, 'Log in')),
    error ? h('p', { class: 'error', role: 'alert' }, error) : null);
}
