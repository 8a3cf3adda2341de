// Builds the dashboard SPA (src/dashboard/app) into src/dashboard/dist with
// esbuild: one JS bundle, one CSS file and index.html, nothing from a CDN.
// Runs at `npm install` (the `prepare` script), and lazily from serve.ts when
// the output is missing or older than the sources.
//
//   node src/dashboard/build.ts          build once (exit 1 on failure)
import { copyFileSync, mkdirSync, readdirSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';

export const APP_DIR = path.join(import.meta.dirname, 'app');
export const DIST_DIR = path.join(import.meta.dirname, 'dist');

export type BuildResult = { ok: true; ms: number; bytes: number } | { ok: false; code: 'ESBUILD_MISSING' | 'BUILD_FAILED'; message: string };

/** Newest modification time under `dir` (recursively), 0 when absent. */
function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** True when dist lacks a file or a source is newer than the bundle. */
export function needsBuild(appDir = APP_DIR, distDir = DIST_DIR): boolean {
  const files = ['index.html', 'app.js', 'app.css'].map((f) => path.join(distDir, f));
  if (!files.every((f) => existsSync(f))) return true;
  const built = Math.min(...files.map((f) => statSync(f).mtimeMs));
  return newestMtime(appDir) > built;
}

export async function buildDashboard(opts: { appDir?: string; distDir?: string; minify?: boolean } = {}): Promise<BuildResult> {
  const appDir = opts.appDir ?? APP_DIR;
  const distDir = opts.distDir ?? DIST_DIR;
  const started = Date.now();
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    return { ok: false, code: 'ESBUILD_MISSING', message: `esbuild is not installed (run npm install): ${(err as Error).message}` };
  }
  try {
    mkdirSync(distDir, { recursive: true });
    const r = await esbuild.build({
      entryPoints: { app: path.join(appDir, 'main.ts') },
      bundle: true,
      outdir: distDir,
      format: 'esm',
      target: ['es2022'],
      minify: opts.minify ?? true,
      sourcemap: false,
      metafile: true,
      logLevel: 'silent',
      legalComments: 'none',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    copyFileSync(path.join(appDir, 'index.html'), path.join(distDir, 'index.html'));
    const bytes = Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
    return { ok: true, ms: Date.now() - started, bytes };
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors;
    const message = errors?.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`).join('\n') ?? (err as Error).message;
    return { ok: false, code: 'BUILD_FAILED', message };
  }
}

if (import.meta.main) {
  const r = await buildDashboard();
  if (r.ok) console.log(`dashboard: built ${DIST_DIR} (${(r.bytes / 1024).toFixed(0)} KiB in ${r.ms} ms)`);
  else {
    console.error(`dashboard: ${r.code}: ${r.message}`);
    process.exitCode = 1;
  }
}
