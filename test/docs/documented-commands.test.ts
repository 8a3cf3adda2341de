// Every `trellis` command the documentation shows, checked against the CLI so
// the two cannot drift apart again (examples/README.md once told users to
// pass `--control-plane` to `trellis apply`, which rejects it).
//
// Where commands are found: README.md, docs/*.md and examples/**/README.md;
// in fenced code blocks, each line running `trellis` or `npx trellis`
// (continuation lines joined, `# comments` and leading VAR=value assignments
// dropped, `$(npx trellis ...)` taken from inside the substitution), and in
// inline code spans that start with `trellis ` or `npx trellis ` (synopses).
//
// What is checked:
// - Every command parses: its name is a command (or alias) and its options
//   are the command's. The documented arguments plus `--help` (before `--`)
//   are passed to the CLI's own `main()` in this process: every command
//   parses all its options strictly before it looks at --help, so an unknown
//   option fails (exit 2) and a known one prints the usage (exit 0); the
//   first test checks that this holds for every command. Synopsis syntax is
//   flattened first: `[` `]` dropped, `a|b` -> `a`. This is how long-running
//   commands (control-plane, run, demo, top, tap, proxy, gateway,
//   node-proxy) are checked: they are not started.
// - Read-only and apply commands from code blocks (apply, get, describe,
//   stat, routes, edges, identity, identity token, proxy-status, bootstrap)
//   that name no placeholder (an all-caps word such as FILE or NS) and no
//   host but loopback also run for real, in document order, as child
//   processes against a control plane started here on free ports with a
//   temporary data directory (TRELLIS_SERVER, TRELLIS_API -- `identity` reads
//   that one --, and TRELLIS_XDS, for `bootstrap`, point at it),
//   and must exit 0. `apply -f X.yaml` reads the YAML block of the same
//   document whose first line is `# X.yaml`, or the repository's file X
//   (examples/...); a loopback `--server` URL is replaced by ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, globSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startControlPlane } from '../../src/control-plane/control-plane.ts';
import { commandNames, main } from '../../src/cli/main.ts';
import { freePort } from '../../src/runner/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const TRELLIS = path.join(ROOT, 'bin', 'trellis.ts');
const RUN_FOR_REAL = new Set(['apply', 'get', 'describe', 'stat', 'routes', 'edges', 'identity', 'proxy-status', 'bootstrap']);

interface Documented {
  /** file:line */
  where: string;
  args: string[];
  /** From a code block (a command to type) rather than an inline synopsis. */
  block: boolean;
}

/** Shell words of one line: quotes kept together and removed, `# comment` ends the line. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | null = null;
  let depth = 0; // inside $( ... )
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
      continue;
    }
    if (c === '$' && line[i + 1] === '(') depth++;
    if (c === ')' && depth > 0) depth--;
    if ((c === '"' || c === "'") && depth === 0) {
      quote = c;
      inWord = true;
      continue;
    }
    if (/\s/.test(c) && depth === 0) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    if (c === '#' && !inWord && depth === 0) break;
    cur += c;
    inWord = true;
  }
  if (inWord) out.push(cur);
  return out;
}

/** The trellis arguments of one shell line, if it runs trellis. */
function trellisArgs(line: string): string[] | undefined {
  const sub = /\$\(((?:npx )?trellis [^)]*)\)/.exec(line);
  if (sub) return trellisArgs(sub[1]!);
  const w = words(line);
  let i = 0;
  while (i < w.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(w[i]!)) i++;
  if (w[i] === 'npx') i++;
  if (w[i] !== 'trellis') return undefined;
  return w.slice(i + 1);
}

function documented(): { commands: Documented[]; files: Map<string, Map<string, string>> } {
  const docs = ['README.md', ...globSync('docs/*.md', { cwd: ROOT }), ...globSync('examples/**/README.md', { cwd: ROOT })].sort();
  const commands: Documented[] = [];
  const files = new Map<string, Map<string, string>>();
  for (const doc of docs) {
    const text = readFileSync(path.join(ROOT, doc), 'utf8');
    const yaml = new Map<string, string>();
    files.set(doc, yaml);
    const fence = /^```[^\n]*\n([\s\S]*?)^```/gm;
    let m: RegExpExecArray | null;
    while ((m = fence.exec(text))) {
      const body = m[1]!;
      const startLine = text.slice(0, m.index).split('\n').length + 1;
      const named = /^# ([\w.-]+\.ya?ml)\b/.exec(body);
      if (named) yaml.set(named[1]!, body);
      const lines = body.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const at = i;
        let line = lines[i]!;
        while (/\\\s*$/.test(line) && i + 1 < lines.length) line = line.replace(/\\\s*$/, ' ') + lines[++i]!;
        const args = trellisArgs(line.trim());
        if (args) commands.push({ where: `${doc}:${startLine + at}`, args, block: true });
      }
    }
    const prose = text.replace(/^```[\s\S]*?^```/gm, (b) => b.replace(/[^\n]/g, ' '));
    const inline = /`((?:npx )?trellis [^`]+)`/g;
    while ((m = inline.exec(prose))) {
      const line = prose.slice(0, m.index).split('\n').length;
      const args = trellisArgs(m[1]!.replace(/\s+/g, ' '));
      if (args) commands.push({ where: `${doc}:${line}`, args, block: false });
    }
  }
  return { commands, files };
}

/** Synopsis syntax flattened: brackets dropped, `a|b` -> `a`. */
function flatten(args: string[]): string[] {
  return args.map((a) => a.replace(/[[\]]/g, '')).filter((a) => a !== '').map((a) => (a.includes('|') && !a.includes(' ') ? a.split('|').find((x) => x !== '') ?? a : a));
}

const PLACEHOLDER = /^[A-Z][A-Z0-9_]*(=[A-Z][A-Z0-9_]*)?$/;

/** main() in this process, its output captured. */
async function parseOnly(args: string[]): Promise<{ code: number; out: string }> {
  const dd = args.indexOf('--');
  const withHelp = args[0] === '--help' ? args : dd >= 0 ? [...args.slice(0, dd), '--help', ...args.slice(dd)] : [...args, '--help'];
  let out = '';
  const saved = { log: console.log, error: console.error, stdout: process.stdout.write, stderr: process.stderr.write };
  console.log = (...a: unknown[]) => void (out += `${a.join(' ')}\n`);
  console.error = console.log;
  const write = (chunk: unknown): boolean => {
    out += String(chunk);
    return true;
  };
  process.stdout.write = write as typeof process.stdout.write;
  process.stderr.write = write as typeof process.stderr.write;
  try {
    const code = await main(withHelp);
    return { code: code ?? 0, out };
  } finally {
    console.log = saved.log;
    console.error = saved.error;
    process.stdout.write = saved.stdout;
    process.stderr.write = saved.stderr;
  }
}

test('the parse check is sound: every command rejects an unknown option even with --help', async () => {
  // Commands whose first argument is a subcommand.
  const sub: Record<string, string> = { bootstrap: 'grpc' };
  for (const name of commandNames()) {
    const r = await parseOnly([name, ...(sub[name] ? [sub[name]] : []), '--no-such-option']);
    assert.equal(r.code, 2, `trellis ${name} --no-such-option --help exited ${r.code}: ${r.out}`);
  }
});

test('every trellis command in README.md, docs/ and examples/ parses, and the read-only and apply ones succeed', async (t) => {
  const { commands, files } = documented();
  assert.ok(commands.filter((c) => c.block).length >= 20, `found only ${commands.length} documented commands`);

  const problems: string[] = [];
  const seen = new Set<string>();
  for (const c of commands) {
    const args = flatten(c.args);
    const key = args.join('\u0000');
    if (seen.has(key)) continue;
    seen.add(key);
    const r = await parseOnly(args);
    if (r.code !== 0) problems.push(`${c.where}: trellis ${c.args.join(' ')}\n    ${r.out.split('\n')[0]}`);
  }
  assert.ok(problems.length === 0, `documented commands the CLI rejects:\n${problems.join('\n')}`);

  // The read-only and apply ones, for real.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'trellis-doc-cp-'));
  const work = mkdtempSync(path.join(tmpdir(), 'trellis-doc-cwd-'));
  const cp = await startControlPlane({ dataDir, apiPort: 0, xdsPort: await freePort(), log: () => {} });
  t.after(async () => {
    await cp.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  const env = { ...process.env, NODE_NO_WARNINGS: '1', TRELLIS_SERVER: cp.apiUrl, TRELLIS_API: cp.apiUrl, TRELLIS_XDS: cp.xdsAddress };
  let ran = 0;
  for (const c of commands) {
    if (!c.block || !RUN_FOR_REAL.has(c.args[0] ?? '')) continue;
    if (c.args.some((a) => PLACEHOLDER.test(a) || /[[\]|]/.test(a))) continue;
    if (c.args.some((a) => /:\/\//.test(a) && !/:\/\/(127\.0\.0\.1|localhost)[:/]/.test(a))) continue;
    const doc = c.where.slice(0, c.where.indexOf(':'));
    const args = c.args.map((a, i) => {
      if (c.args[i - 1] === '-f') {
        // A file the document wrote out, or one in the repository (examples/...).
        const shown = files.get(doc)?.get(a);
        if (shown !== undefined) writeFileSync(path.join(work, a), shown);
        else if (existsSync(path.join(ROOT, a))) return path.join(ROOT, a);
      }
      // The documented control plane (loopback, default port) is ours here.
      return c.args[i - 1] === '--server' ? cp.apiUrl : a;
    });
    const r = await promisify(execFile)(process.execPath, [TRELLIS, ...args], { cwd: work, env, timeout: 20_000 }).then(
      (): string | undefined => undefined,
      (err: { code?: number; stderr?: string; stdout?: string }) => `exit ${err.code}: ${(err.stderr || err.stdout || '').trim().split('\n').slice(0, 3).join(' | ')}`,
    );
    ran++;
    if (r) problems.push(`${c.where}: trellis ${c.args.join(' ')}\n    ${r}`);
  }
  t.diagnostic(`${commands.length} documented commands (${seen.size} distinct) parsed; ${ran} run against a control plane`);
  assert.ok(ran >= 8, `ran only ${ran}`);
  assert.ok(problems.length === 0, `documented commands that fail:\n${problems.join('\n')}`);
});
