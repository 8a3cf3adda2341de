// `trellis tap [SERVICE] [--path P] [--method M] [--code N] [--authority A]
//   [--admin HOST:PORT]... [--max N] [--duration 10s] [-o json]`:
// live request/response metadata from the proxies (never bodies; credentials
// redacted by the proxy), one line per request: the caller's and the
// callee's proxy each see it, and the two views are joined (tap-join.ts;
// `-o json` keeps both as `client` and `server`); SERVICE must be one of the
// mesh's services when the control plane is asked. Without --admin, through the control plane's
// /api/v1/tap (every proxy it scrapes; it holds their admin tokens); with
// --admin, directly, with --admin-token or TRELLIS_ADMIN_TOKEN.
import { parseOrExit } from '../command-args.ts';
import { processIO, type CommandIO } from '../command-io.ts';
import { checkTapTarget, formatTapRequest, openTapFor, parseDuration, type TapLine } from '../tap-stream.ts';
import { TapJoiner, type TapRequest } from '../tap-join.ts';

export const summary = 'stream live request metadata from the proxies (filter by service, path, method, status)';

const usage = `usage: trellis tap [SERVICE] [--path PREFIX] [--method M] [--code STATUS] [--authority HOST]
                   [--admin HOST:PORT]... [--admin-token T] [--max N] [--duration 10s] [-o text|json] [--server URL]`;

export async function exec(argv: string[], io: CommandIO): Promise<number> {
  const args = parseOrExit('tap', argv, {
        path: { type: 'string' }, method: { type: 'string' }, code: { type: 'string' }, authority: { type: 'string' },
        admin: { type: 'string', multiple: true }, 'admin-token': { type: 'string' }, max: { type: 'string' }, duration: { type: 'string' },
        output: { type: 'string', short: 'o' }, server: { type: 'string' }, context: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      }, usage, io);
  if (typeof args === 'number') return args;
  const { values, positionals } = args;
  const max = values.max === undefined ? Infinity : Number(values.max);
  if (!(max > 0)) {
    io.err('trellis tap: --max: must be a positive number');
    return 2;
  }
  const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
  if (values.duration !== undefined && durationMs === undefined) {
    io.err('trellis tap: --duration: must look like 500ms, 10s or 2m');
    return 2;
  }
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') {
    io.err(`trellis tap: -o: must be text or json (got "${output}")`);
    return 2;
  }
  if (!values.admin?.length) {
    const bad = await checkTapTarget('tap', positionals[0], { server: values.server, context: values.context }, io);
    if (bad !== undefined) return bad;
  }
  let seen = 0;
  const joiner = new TapJoiner((r: TapRequest) => {
    if (seen >= max) return;
    seen++;
    io.out(output === 'json' ? JSON.stringify(r) : formatTapRequest(r));
    if (seen >= max) handle.stop();
  });
  const { handle, sources } = openTapFor({ admin: values.admin, adminToken: values['admin-token'], server: values.server, context: values.context }, { service: positionals[0], path: values.path, method: values.method, code: values.code, authority: values.authority }, (line: TapLine, from) => {
    if (line.type === 'start') return;
    if (line.type === 'dropped') {
      io.err(`(${line.count} events dropped: the tap could not keep up)`);
      return;
    }
    joiner.add(line, from);
  });
  const timer = durationMs === undefined ? undefined : setTimeout(() => handle.stop(), durationMs);
  const onSigint = (): void => handle.stop();
  process.once('SIGINT', onSigint);
  const { errors } = await handle.done;
  joiner.flush();
  clearTimeout(timer);
  process.off('SIGINT', onSigint);
  for (const e of errors) io.err(`trellis tap: ${e}`);
  return errors.length >= sources && seen === 0 ? 1 : 0;
}

export function run(argv: string[]): Promise<number> {
  return exec(argv, processIO());
}
