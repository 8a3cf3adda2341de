#!/usr/bin/env node
// The one `trellis` command. Subcommands live in src/cli/commands/*.ts.
import { main } from '../src/cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  },
);
