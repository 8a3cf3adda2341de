// Regular expressions from configuration, matched with linear-time semantics
// (Envoy's config says RE2): a route regex such as `^/redos/(a+)+$` must not
// let one request stall the proxy's only thread (issue 13: 6.9 s for a
// 30-character path with the backtracking engine).
//
// How: V8's linear-time engine. Loading this module switches on two V8 flags:
// `--enable-experimental-regexp-engine` (the `l` flag, which compiles a
// pattern for the linear engine or refuses it) and
// `--enable-experimental-regexp-engine-on-excessive-backtracks` (a regex
// that backtracks more than `--regexp-backtracks-before-fallback` times
// re-runs on the linear engine). A pattern is accepted only if the linear
// engine can run it; it is then matched by the ordinary engine (~20 ns for a
// route regex, where the linear engine takes ~1.7 µs) until it backtracks too
// much, and from there in linear time. docs/security.md says why this and not
// an RE2 package.
//
// Refused: backreferences, lookahead, large counted repetitions (`x{1000}`),
// the `i` and `u` flags, and RE2-only syntax (`(?i)`, `(?P<name>...)`),
// each with a message naming the field.
import v8 from 'node:v8';

/** Backtracks before a regex is re-run on the linear engine. */
export const BACKTRACKS_BEFORE_FALLBACK = 10_000;

v8.setFlagsFromString('--enable-experimental-regexp-engine');
v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
v8.setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_FALLBACK}`);

/** Why the linear engine cannot run `source`, or null when it can. */
export function linearRegexError(source: string, flags = ''): string | null {
  try {
    new RegExp(source, flags + 'l');
    return null;
  } catch (err) {
    const msg = (err as Error).message;
    if (msg.includes('linear time')) return `cannot be matched in linear time (backreferences, lookahead and large counted repetitions are not supported): /${source}/`;
    return `invalid regular expression: ${msg.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '')}`;
  }
}

/** `source` compiled for matching (whole-input anchoring is the caller's),
 * or the reason it is refused. */
export function compileLinearRegex(source: string, flags = ''): RegExp | string {
  const e = linearRegexError(source, flags);
  return e ?? new RegExp(source, flags);
}
