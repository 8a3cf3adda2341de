// Shared option parsing for the resource commands (node:util parseArgs).
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const COMMON_OPTIONS = {
  server: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export type Parsed<O extends NonNullable<ParseArgsConfig['options']>> =
  | { ok: true; values: { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string }; positionals: string[] }
  | { ok: false; error: string };

export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(command: string, argv: string[], options: O): Parsed<O> {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { ok: true, values: values as never, positionals };
  } catch (err) {
    return { ok: false, error: `trellis ${command}: ${(err as Error).message}` };
  }
}
