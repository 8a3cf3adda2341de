#!/usr/bin/env node
// The one `trellis` command. Subcommands live in src/cli/commands/*.ts.
import { main } from '../src/cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err: unknown) => {
    if ((err as { code?: string }).code === 'ERR_TRELLIS_USAGE') {
      // A mistake on the command line (command-args.ts): the reason, no stack.
      console.error(`trellis ${process.argv[2] ?? ''}: ${(err as Error).message} (see \`trellis ${process.argv[2] ?? ''} --help\`)`);
      process.exitCode = 2;
      return;
    }
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  },
);
