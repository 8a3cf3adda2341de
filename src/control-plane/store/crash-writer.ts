// Test fixture for the crash conformance test: opens a store, writes keys
// `<prefix>k<n>` from 4 concurrent writers and prints `ack <n> <revision>` on
// stdout as soon as each put is acknowledged. The parent SIGKILLs it
// mid-stream and checks that every acknowledged write survived.
//   node crash-writer.ts sqlite <dir>
//   node crash-writer.ts etcd <endpoint> <prefix>
import type { Store } from './types.ts';

const [kind, a, b] = process.argv.slice(2);

async function open(): Promise<Store> {
  if (kind === 'sqlite' && a) return (await import('./sqlite.ts')).openSqliteStore(a);
  if (kind === 'etcd' && a) return (await import('./etcd.ts')).openEtcdStore({ endpoints: [a], prefix: b ?? '' });
  throw new Error('usage: crash-writer.ts sqlite <dir> | etcd <endpoint> <prefix>');
}

const store = await open();
let next = 0;
const MAX = 100_000;

async function writer(): Promise<void> {
  while (next < MAX) {
    const n = next++;
    const res = await store.put(`/crash/k${n}`, `v${n}`);
    if (!res.ok) throw new Error(`put k${n} failed: ${res.reason}`);
    process.stdout.write(`ack ${n} ${res.revision}\n`);
  }
}

process.stdout.write('ready\n');
await Promise.all([writer(), writer(), writer(), writer()]);
await store.close();
