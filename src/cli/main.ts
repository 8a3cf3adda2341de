// `trellis <command> [args]`: each command is one file in ./commands/<name>.ts
// exporting `summary` (one line for the help) and `run(argv): Promise<number|void>`.
// Adding a command means adding a file; nothing here changes.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ConfigError } from './contexts.ts';

export interface Command {
  summary: string;
  run(argv: string[]): Promise<number | void>;
}

const commandsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'commands');

/** Aliases map a second name onto a command file (kubectl-style short names). */
const aliases: Record<string, string> = { up: 'control-plane', check: 'identity' };

export function commandNames(): string[] {
  return readdirSync(commandsDir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

export async function loadCommand(name: string): Promise<Command | undefined> {
  const file = aliases[name] ?? name;
  if (!/^[a-z][a-z0-9-]*$/.test(file) || !commandNames().includes(file)) return undefined;
  return (await import(path.join(commandsDir, `${file}.ts`))) as Command;
}

async function help(): Promise<string> {
  const lines = ['usage: trellis <command> [options]', '', 'commands:'];
  for (const name of commandNames()) {
    const cmd = await loadCommand(name);
    lines.push(`  ${name.padEnd(16)} ${cmd?.summary ?? ''}`);
  }
  lines.push('', 'Run `trellis <command> --help` for a command\'s options.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number | void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await help());
    return name === undefined ? 2 : 0;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    console.error(`trellis: unknown command "${name}"\n\n${await help()}`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    // A command that lets node:util parseArgs throw (strict): an unknown or
    // malformed option is the user's mistake, said in one line, no stack.
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
      console.error(`trellis ${name}: ${(err as Error).message}\n(\`trellis ${name} --help\` lists its options)`);
      return 2;
    }
    // The CLI config (contexts.ts) is the user's to fix: a message, no stack.
    if (err instanceof ConfigError) {
      console.error(`trellis ${name}: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
