// trellis inject -f FILE|-: the sidecar injection the webhook does, offline
// (like `istioctl kube-inject`): prints the manifests with every Pod and
// Pod template injected (control-plane/kubernetes/inject.ts, the same function).
import { readFileSync } from 'node:fs';
import { parseOrExit } from '../command-args.ts';
import { parseAllDocuments, stringify } from 'yaml';
import { DEFAULT_SIDECAR_IMAGE, injectManifests } from '../../control-plane/kubernetes/inject.ts';

export const summary = 'Add the Trellis sidecar to Kubernetes manifests offline (-f FILE|-), like istioctl kube-inject';

const USAGE = `usage: trellis inject -f FILE|- [--sidecar-image IMG] [--sidecar-xds ADDR] [--sidecar-api URL]

  -f, --filename     Kubernetes YAML/JSON (Pods, Deployments, StatefulSets, DaemonSets,
                     ReplicaSets, Jobs, CronJobs; other objects pass through), - for stdin
  --sidecar-image    default ${DEFAULT_SIDECAR_IMAGE}
  --sidecar-xds      where sidecars reach xDS (default trellis.trellis-system.svc:15010)
  --sidecar-api      where they reach the CA (default http://trellis.trellis-system.svc:15080)
A Pod template annotated or labelled trellis.dev/inject: "false" is left alone.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('inject', argv, {
    filename: { type: 'string', short: 'f' },
    'sidecar-image': { type: 'string' },
    'sidecar-xds': { type: 'string' },
    'sidecar-api': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  } as const, USAGE);
  if (typeof args === 'number') return args;
  if (args.positionals.length > 0) {
    console.error(`trellis inject: unexpected argument "${args.positionals[0]}"\n\n${USAGE}`);
    return 2;
  }
  const { values } = args;
  if (!values.filename) {
    console.error(`trellis inject: -f is required\n\n${USAGE}`);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(values.filename === '-' ? 0 : values.filename, 'utf8');
  } catch (err) {
    console.error(`trellis inject: ${values.filename}: ${(err as Error).message}`);
    return 1;
  }
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    if (d.errors.length > 0) {
      console.error(`trellis inject: ${values.filename}: ${d.errors[0]!.message}`);
      return 1;
    }
  }
  const out = injectManifests(list.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined), {
    image: values['sidecar-image'] ?? DEFAULT_SIDECAR_IMAGE,
    xdsAddress: values['sidecar-xds'] ?? 'trellis.trellis-system.svc:15010',
    identityUrl: values['sidecar-api'] ?? 'http://trellis.trellis-system.svc:15080',
  });
  process.stdout.write(out.map((d) => stringify(d)).join('---\n'));
  return 0;
}
