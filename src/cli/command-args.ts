// Shared option parsing for the CLI commands (node:util parseArgs, strict,
// positionals allowed): a parse error prints the reason and the usage (exit
// 2), --help prints the usage (exit 0).
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';
import { closestName } from '../lib/did-you-mean.ts';

/** A mistake on the command line, with parseArgs' code (ERR_PARSE_ARGS_*):
 * main() prints the message alone (no stack trace) and exits 2. */
export class UsageError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

/** node:util's parseArgs whose errors say what is wrong in one line, with
 * the closest known option for an unknown one (a UsageError). */
export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  try {
    return nodeParseArgs(config);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new UsageError(explainParseError(err, config.options ?? {}), typeof code === 'string' ? code : 'ERR_PARSE_ARGS_INVALID');
  }
}

/** parseArgs' error as one line: `unknown option --serverx (did you mean
 * --server?)`; the option list when nothing is close. */
export function explainParseError(err: unknown, options: NonNullable<ParseArgsConfig['options']>): string {
  const e = err as { code?: string; message?: string };
  const message = e.message ?? String(err);
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /Unknown option '([^']+)'/.exec(message)?.[1] ?? '?';
    const names = Object.keys(options).map((k) => `--${k}`);
    const bare = flag.replace(/=.*$/, '');
    const guess = bare.startsWith('--') ? closestName(bare, names, Math.max(2, Math.floor(bare.length / 3))) : undefined;
    return `unknown option ${bare}${guess ? ` (did you mean ${guess}?)` : ` (known options: ${names.filter((n) => n !== '--help').join(', ')})`}`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return message.replace(/^Option '(?:-\w, )?([^ ',]+)[^']*' argument missing$/, '$1 needs a value').replace(/\.$/, '');
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return message.replace(/^Unexpected argument '([^']*)'.*$/s, "unexpected argument '$1' (this command takes no positional arguments)");
  return message;
}

export const COMMON_OPTIONS = {
  server: { type: 'string' },
  /** A context from the CLI config (contexts.ts). */
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export type Parsed<O extends NonNullable<ParseArgsConfig['options']>> =
  | { ok: true; values: { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string }; positionals: string[] }
  | { ok: false; error: string };

export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(command: string, argv: string[], options: O): Parsed<O> {
  try {
    const { values, positionals } = nodeParseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { ok: true, values: values as never, positionals };
  } catch (err) {
    return { ok: false, error: `trellis ${command}: ${explainParseError(err, options)}` };
  }
}

/** Where a command prints: its CommandIO, or the console. */
export interface UsageIO {
  out(s: string): void;
  err(s: string): void;
}

const CONSOLE_IO: UsageIO = { out: (s) => console.log(s), err: (s) => console.error(s) };

export type ParsedArgs<O extends NonNullable<ParseArgsConfig['options']>> = Extract<Parsed<O>, { ok: true }>;

/** The parsed arguments, or the exit code once handled: 2 after a parse
 * error (printed with the usage), 0 after --help (the usage printed). */
export function parseOrExit<O extends NonNullable<ParseArgsConfig['options']>>(command: string, argv: string[], options: O, usage: string, io: UsageIO = CONSOLE_IO): ParsedArgs<O> | number {
  const args = parseCommandArgs(command, argv, options);
  if (!args.ok) {
    io.err(`${args.error}\n\n${usage}`);
    return 2;
  }
  if ((args.values as { help?: boolean }).help) {
    io.out(usage);
    return 0;
  }
  return args;
}

/** `--region R --zone Z`: where a workload, gateway or node proxy runs. Its
 * endpoints are registered in that locality and its proxy's node carries it,
 * so LoadBalancerPolicy `locality` (preferZone, failover) can use it. The
 * registry's Workload has region and zone (no sub-zone). */
export const LOCALITY_OPTIONS = {
  region: { type: 'string' },
  zone: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export interface LocalityArgs {
  region?: string;
  zone?: string;
}

const LOCALITY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,126}[A-Za-z0-9])?$/;

/** The locality from --region/--zone, or an error naming the flag. */
export function parseLocality(values: { region?: string | undefined; zone?: string | undefined }): LocalityArgs | string {
  const out: LocalityArgs = {};
  for (const k of ['region', 'zone'] as const) {
    const v = values[k];
    if (v === undefined) continue;
    if (!LOCALITY_NAME.test(v)) return `--${k} ${JSON.stringify(v)}: expected 1-128 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`;
    out[k] = v;
  }
  return out;
}
