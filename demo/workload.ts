// One demo workload and its sidecar, in its own process: the `trellis run`
// machinery (runWorkload) with a spec in JSON (argv[2]), so ports can carry
// names (every reviews version listens on its own port; the Service targets
// the port named "http"). Exits with the app's exit code.
import { runWorkload, type RunOptions } from '../src/runner/runner.ts';

type Spec = Omit<RunOptions, 'log' | 'onStep' | 'onRunning'>;

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const quiet = new Set(['registered', 'sidecar_started', 'sidecar_ready', 'app_started', 'signal_forwarded', 'app_exited', 'heartbeat']);
// Once stopping, the sidecar going away is expected: only failures are worth a line.
let stopping = false;
for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => (stopping = true));
const code = await runWorkload({
  ...spec,
  log: (event, fields = {}) => {
    if (quiet.has(event) || (stopping && !event.endsWith('_failed'))) return;
    process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), workload: spec.workload, event, ...fields })}\n`);
  },
});
process.exit(code);
