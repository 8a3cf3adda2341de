// `npm install` step: link node_modules/.bin/trellis to bin/trellis.ts, as
// npm links a dependency's bins, so `npx trellis` in the checkout runs it
// straight from node_modules/.bin with the project's Node 24 (the `node`
// package's bin is first on that PATH).
//
// Why not package.json `bin`: given a root package whose `bin` names the
// command, npx installs the checkout itself into its npx cache and npm then
// checks its `engines` (Node >=22.12, true for what runs it) against the
// Node npm itself runs on. On a machine whose own Node is 20 that printed
// `npm warn EBADENGINE` on npx calls although the command runs on Node 24.
import { mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const binDir = path.join(root, 'node_modules', '.bin');
const link = path.join(binDir, 'trellis');
const target = path.relative(binDir, path.join(root, 'bin', 'trellis.ts'));

let current: string | undefined;
try {
  current = readlinkSync(link);
} catch {
  current = undefined;
}
if (current !== target) {
  mkdirSync(binDir, { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(target, link);
}
