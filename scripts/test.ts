// The one test command: the type check, then every node:test file.
// Usage: npm test [-- <file or glob>...]   (extra args narrow the run)
import { spawnSync } from 'node:child_process';
import { globSync } from 'node:fs';

const args = process.argv.slice(2);
const skipTypecheck = process.env.TRELLIS_SKIP_TYPECHECK === '1';

if (!skipTypecheck) {
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (tsc.status !== 0) {
    console.error('type check failed');
    process.exit(tsc.status ?? 1);
  }
}

const patterns = args.length > 0 ? args : ['src/**/*.test.ts', 'test/**/*.test.ts'];
const files = patterns.flatMap((p) => (p.includes('*') ? globSync(p) : [p])).sort();
if (files.length === 0) {
  console.error('no test files matched', patterns.join(' '));
  process.exit(1);
}
const run = spawnSync(
  process.execPath,
  ['--test', '--test-reporter=spec', `--test-concurrency=${process.env.TRELLIS_TEST_CONCURRENCY ?? '2'}`, '--test-timeout=120000', ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_NO_WARNINGS: '1' } },
);
process.exit(run.status ?? 1);
