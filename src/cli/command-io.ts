// Where a command writes and what it knows about the terminal, so commands
// run the same in tests (captured output, fixed width, no TTY) as in a shell.
import type { SpinnerOut } from './spinner.ts';

export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  /** Terminal width, or undefined when output is not a terminal. */
  readonly columns: number | undefined;
  /** The stream spinners draw on (only when it is a TTY). */
  readonly spinnerOut: SpinnerOut;
}

export function processIO(): CommandIO {
  const tty = process.stdout.isTTY === true;
  return {
    out: (t) => void process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
    err: (t) => void process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
    columns: tty ? process.stdout.columns : undefined,
    spinnerOut: process.stdout,
  };
}

/** Captures output; for tests. */
export function captureIO(columns?: number): CommandIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    columns,
    spinnerOut: { isTTY: false, write: () => true },
  };
}
