// trellis install: print the Kubernetes manifests for the control plane
// (control-plane/kubernetes/install.ts); apply them with
// `trellis install | kubectl apply --server-side -f -`.
import { parseOrExit } from '../command-args.ts';
import { stringify } from 'yaml';
import { INSTALL_NAMESPACE, installManifests } from '../../control-plane/kubernetes/install.ts';
import { DEFAULT_SIDECAR_IMAGE } from '../../control-plane/kubernetes/inject.ts';

export const summary = 'Print the Kubernetes manifests for Trellis (CRDs, RBAC, Deployment, Service, injection webhook)';

const USAGE = `usage: trellis install [--image IMG] [--namespace NS] [--storage SIZE] [-o yaml|json]

  --image      control plane and sidecar image (default ${DEFAULT_SIDECAR_IMAGE})
  --namespace  where the control plane runs (default ${INSTALL_NAMESPACE})
  --storage    its volume (CA and store), default 1Gi
  -o           yaml (default) or json (a v1 List)
Apply: trellis install | kubectl apply --server-side -f -  (docs/kubernetes.md)`;

export async function run(argv: string[]): Promise<number> {
  const args = parseOrExit('install', argv, {
    image: { type: 'string' },
    namespace: { type: 'string' },
    storage: { type: 'string' },
    output: { type: 'string', short: 'o' },
    help: { type: 'boolean', short: 'h' },
  } as const, USAGE);
  if (typeof args === 'number') return args;
  if (args.positionals.length > 0) {
    console.error(`trellis install: unexpected argument "${args.positionals[0]}"\n\n${USAGE}`);
    return 2;
  }
  const { values } = args;
  const output = values.output ?? 'yaml';
  if (output !== 'yaml' && output !== 'json') {
    console.error(`trellis install: -o: must be yaml or json (got ${JSON.stringify(output)})`);
    return 2;
  }
  if (values.namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(values.namespace)) {
    console.error(`trellis install: --namespace: must be a DNS label (got ${JSON.stringify(values.namespace)})`);
    return 2;
  }
  const docs = installManifests({
    ...(values.image ? { image: values.image } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values.storage ? { storage: values.storage } : {}),
  });
  if (output === 'json') process.stdout.write(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }, null, 2)}\n`);
  else process.stdout.write(docs.map((d) => stringify(d)).join('---\n'));
  return 0;
}
