// Differential test of the HTTP/1 request parser (src/proxy/http1/
// head-parser.ts + body-decoder.ts) against Node's llhttp: the same bytes go
// to the Trellis parser and, over a socket, to a node:http server, on
// generated inputs, valid and malformed (request smuggling shapes: CL+TE,
// duplicate CL, obs-fold, bare LF/CR, invalid characters, chunk-size
// overflow...). Verdicts are compared: both accept with the same method,
// target, Host, end-to-end headers and body; or both reject. Every
// disagreement must be one the DIFFERENCES table below explains (each with
// its RFC reason); an unexplained one fails the test with the input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { parseRequestHead } from '../../src/proxy/http1/head-parser.ts';
import { BODY_CHUNKED, BODY_LENGTH, BodyDecoder } from '../../src/proxy/http1/body-decoder.ts';

type Verdict =
  | { kind: 'accept'; method: string; target: string; host: string | null; headers: string[]; body: string }
  | { kind: 'reject'; reason: string }
  | { kind: 'expect-failed' }
  | { kind: 'incomplete' };

// Hop-by-hop and framing fields: compared through their effect, not listed.
const NOT_COMPARED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'content-length', 'host', 'upgrade', 'expect', 'trailer']);

function trellis(bytes: Buffer): Verdict {
  const h = parseRequestHead(bytes, 0);
  if (h.kind === 'incomplete') return { kind: 'incomplete' };
  if (h.kind === 'error') return h.code === 'EXPECTATION_FAILED' ? { kind: 'expect-failed' } : { kind: 'reject', reason: h.reason };
  let body = '';
  if (h.chunked || h.contentLength > 0) {
    const d = new BodyDecoder();
    d.reset(h.chunked ? BODY_CHUNKED : BODY_LENGTH, h.contentLength);
    d.decode(bytes, h.end, { bodyData: (c) => { body += c.toString('latin1'); return true; } });
    if (d.error !== null) return { kind: 'reject', reason: d.error };
    if (!d.done) return { kind: 'incomplete' };
  }
  const headers: string[] = [];
  for (let i = 0; i < h.headers.length; i += 2) if (!NOT_COMPARED.has(h.headers[i]!)) headers.push(`${h.headers[i]}: ${h.headers[i + 1]}`);
  return { kind: 'accept', method: h.method, target: h.target, host: h.host ?? null, headers, body };
}

/** node:http (llhttp, default strict settings) on a loopback socket. Only
 * the first message counts: an error llhttp reports for bytes after a
 * complete request (a second, pipelined message) is not about the first. */
async function nodeServer(t: import('node:test').TestContext): Promise<(bytes: Buffer) => Promise<Verdict>> {
  let current: ((v: Verdict) => void) | null = null;
  let firstReq: http.IncomingMessage | null = null;
  // The server side of the connection of the input being tried: events of
  // earlier connections (a reset as the harness closes them) are ignored.
  let conn: net.Socket | null = null;
  const settle = (v: Verdict): void => {
    const c = current;
    current = null;
    c?.(v);
  };
  const accept = (req: http.IncomingMessage, body: string): void => {
    const connectionNamed = new Set((req.headers.connection ?? '').toLowerCase().split(',').map((x) => x.trim()));
    const headers: string[] = [];
    let host: string | null = null;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const n = req.rawHeaders[i]!.toLowerCase();
      if (n === 'host') host = req.rawHeaders[i + 1]!;
      if (!NOT_COMPARED.has(n) && !connectionNamed.has(n)) headers.push(`${n}: ${req.rawHeaders[i + 1]}`);
    }
    settle({ kind: 'accept', method: req.method ?? '', target: req.url ?? '', host, headers, body });
  };
  const server = http.createServer((req, res) => {
    if (req.socket !== conn || firstReq !== null) return; // an old connection, or a later pipelined message
    firstReq = req;
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('error', (e) => {
      if (req.socket === conn) settle({ kind: 'reject', reason: `body: ${(e as NodeJS.ErrnoException).code ?? e.message}` });
    });
    req.on('end', () => {
      accept(req, body);
      res.end();
    });
  });
  server.on('connection', (socket: net.Socket) => {
    conn = socket;
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    if (socket === conn) accept(req, '');
    socket.destroy();
  });
  server.on('checkExpectation', (req, res) => {
    if (req.socket === conn) settle({ kind: 'expect-failed' });
    res.writeHead(417).end();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket !== conn) {
      socket.destroy();
      return;
    }
    if (firstReq !== null && firstReq.complete) return; // about a later message
    if (firstReq !== null) settle({ kind: 'reject', reason: `body: ${err.code ?? err.message}` });
    else settle({ kind: 'reject', reason: err.code ?? err.message });
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return (bytes) => new Promise<Verdict>((resolve) => {
    firstReq = null;
    conn = null;
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => settle({ kind: 'incomplete' }), 400);
    current = (v) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    // node:http answers some refusals itself (400 for a 1.1 request without Host).
    s.on('data', (d: Buffer) => {
      const m = /^HTTP\/1\.1 (4\d\d)/.exec(d.toString('latin1'));
      if (m && firstReq === null) settle({ kind: 'reject', reason: `status ${m[1]}` });
    });
    s.on('error', () => {});
  });
}

// ---- inputs ----

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const PATH_CHARS = 'abcxyz0123456789-._~/%20!$&\'()*+,;=:@';
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&\'*+.^`|~';
const VALUE_CHARS = 'abc XYZ 0123456789-_.:;,/=()[]{}"?!\t\x80\xe9';

function validRequest(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const str = (chars: string, min: number, max: number): string => {
    const n = min + Math.floor(r() * (max - min + 1));
    let s = '';
    for (let i = 0; i < n; i++) s += chars[Math.floor(r() * chars.length)];
    return s;
  };
  const method = pick(METHODS);
  const target = `/${str(PATH_CHARS, 0, 20).replace(/%(?![0-9A-F]{2})/g, '%25')}${r() < 0.3 ? `?${str('abc=&123', 1, 10)}` : ''}`;
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${pick(['a.test', 'svc.ns:8080', '127.0.0.1'])}`];
  const names = new Set<string>();
  for (let i = Math.floor(r() * 6); i > 0; i--) {
    let n = str(NAME_CHARS, 1, 12);
    if (NOT_COMPARED.has(n.toLowerCase()) || names.has(n.toLowerCase())) n = `x-${i}-${n}`;
    names.add(n.toLowerCase());
    const ows = () => pick(['', ' ', '  ', '\t']);
    lines.push(`${n}:${ows()}${str(VALUE_CHARS, 1, 16).trim()}${ows()}`);
  }
  const body = str('0123456789abcdef\r\n ', 0, 40);
  const kind = method === 'GET' || method === 'HEAD' ? pick(['none', 'none', 'length']) : pick(['none', 'length', 'chunked']);
  if (kind === 'length') return `${lines.join('\r\n')}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  if (kind === 'chunked') {
    let chunks = '';
    let rest = body;
    while (rest.length > 0) {
      const n = 1 + Math.floor(r() * Math.min(rest.length, 15));
      const size = n.toString(16);
      chunks += `${r() < 0.5 ? size.toUpperCase() : size}${r() < 0.2 ? ';ext=1' : ''}\r\n${rest.slice(0, n)}\r\n`;
      rest = rest.slice(n);
    }
    const trailer = r() < 0.3 ? 'X-Checksum: 42\r\n' : '';
    return `${lines.join('\r\n')}\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n${trailer}\r\n`;
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

// Hand-written malformed and edge cases (the request smuggling catalogue).
const H = 'POST / HTTP/1.1\r\nHost: a\r\n';
const CASES: Record<string, string> = {
  'CL and TE': `${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  'TE and CL': `${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`,
  'two different CL': `${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
  'two equal CL': `${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`,
  'CL list of equal values': `${H}Content-Length: 3, 3\r\n\r\nabc`,
  'CL with sign': `${H}Content-Length: +3\r\n\r\nabc`,
  'CL with trailing junk': `${H}Content-Length: 3x\r\n\r\nabc`,
  'CL huge': `${H}Content-Length: 99999999999999999999\r\n\r\nabc`,
  'TE gzip, chunked': `${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
  'TE chunked, gzip': `${H}Transfer-Encoding: chunked, gzip\r\n\r\nabc`,
  'TE chunked twice': `${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  'TE upper case': `${H}Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n`,
  'TE with space before colon': `${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
  'TE obs-folded': `${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
  'TE identity': `${H}Transfer-Encoding: identity\r\n\r\n`,
  'TE in HTTP/1.0': `POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  'obs-fold in a value': `${H}X-A: one\r\n two\r\nContent-Length: 0\r\n\r\n`,
  'bare LF line ends': `GET / HTTP/1.1\nHost: a\n\n`,
  'bare LF inside the head': `GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n`,
  'bare CR inside a value': `GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n`,
  'NUL in a value': `GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n`,
  'DEL in a value': `GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f2\r\n\r\n`,
  'space in a header name': `GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n`,
  'space before the colon': `GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n`,
  '@ in a header name': `GET / HTTP/1.1\r\nHost: a\r\nX@A: 1\r\n\r\n`,
  'empty header name': `GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n`,
  'line without colon': `GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n`,
  'two Host headers': `GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`,
  'no Host in 1.1': `GET / HTTP/1.1\r\nX-A: 1\r\n\r\n`,
  'lower-case method': `get / HTTP/1.1\r\nHost: a\r\n\r\n`,
  'extension method': `PURGE / HTTP/1.1\r\nHost: a\r\n\r\n`,
  'unknown token method': `FROB / HTTP/1.1\r\nHost: a\r\n\r\n`,
  'two spaces after the method': `GET  / HTTP/1.1\r\nHost: a\r\n\r\n`,
  'tab as separator': `GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n`,
  'HTTP/1.2': `GET / HTTP/1.2\r\nHost: a\r\n\r\n`,
  'HTTP/2.0 in an HTTP/1 line': `GET / HTTP/2.0\r\nHost: a\r\n\r\n`,
  'lower-case version': `GET / http/1.1\r\nHost: a\r\n\r\n`,
  'control char in the target': `GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n`,
  'DEL in the target': `GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n`,
  'non-ASCII byte in the target': `GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n`,
  'fragment in the target': `GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n`,
  'absolute-form target': `GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n`,
  'asterisk-form': `OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n`,
  'CONNECT authority-form': `CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n`,
  'empty lines before the request line': `\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n`,
  'chunk size overflow': `${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n`,
  'chunk size with 0x prefix': `${H}Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`,
  'chunk size with a leading space': `${H}Transfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n`,
  'chunk size with trailing spaces': `${H}Transfer-Encoding: chunked\r\n\r\n3  \r\nabc\r\n0\r\n\r\n`,
  'chunk size with a sign': `${H}Transfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n`,
  'chunk extension with a quoted value': `${H}Transfer-Encoding: chunked\r\n\r\n3;a="b c"\r\nabc\r\n0\r\n\r\n`,
  'chunk extension with a control char': `${H}Transfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n0\r\n\r\n`,
  'chunk data longer than its size': `${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n`,
  'chunk ending in bare LF': `${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`,
  'last chunk without the final CRLF': `${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n`,
  'trailer with a forbidden field': `${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n`,
  'Expect: 100-continue': `${H}Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi`,
  'Expect: something else': `${H}Expect: x-other\r\nContent-Length: 2\r\n\r\nhi`,
  'Connection names a header': `GET / HTTP/1.1\r\nHost: a\r\nConnection: x-secret\r\nX-Secret: 1\r\nX-Other: 2\r\n\r\n`,
  'whitespace around a value': `GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v \t\r\n\r\n`,
  'obs-text in a value': `GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n`,
};

/** Flip one byte of a valid request into something hostile. */
function mutate(s: string, r: () => number): string {
  const inserts = ['\r', '\n', ' ', '\t', '\x00', ':', '\x7f', '\r\n', '\r\n ', ',', '"', '\xff'];
  const at = 1 + Math.floor(r() * (s.length - 2));
  const what = inserts[Math.floor(r() * inserts.length)]!;
  return r() < 0.5 ? s.slice(0, at) + what + s.slice(at) : s.slice(0, at) + what + s.slice(at + 1);
}

// ---- explained disagreements ----
// Each: a name, why (the RFC), and a predicate on (input, trellis, node).
interface Difference {
  readonly why: string;
  readonly applies: (input: string, ours: Verdict, theirs: Verdict) => boolean;
}
const headOf = (input: string): string => input.slice(0, Math.max(0, input.indexOf('\r\n\r\n')) || input.length);

const requestLine = (input: string): string => input.replace(/^(\r\n)+/, '').split('\r\n')[0] ?? '';
const lacksHost = (input: string): boolean => !/\r\nhost:/i.test(headOf(input));

const DIFFERENCES: Record<string, Difference> = {
  'identical Content-Length values': {
    why: 'RFC 9110 8.6: identical values (repeated or as a list) may be taken as one; llhttp refuses any duplicate. Trellis reads one length, so both agree on the framing.',
    applies: (i, o, n) => o.kind === 'accept' && n.kind === 'reject' && /content-length:[^\r\n]*,|content-length:[\s\S]*content-length:/i.test(headOf(i)),
  },
  'methods llhttp does not know': {
    why: 'RFC 9110 9.1: a method is any token (case-sensitive); llhttp parses only the methods in its table. Trellis accepts any token and leaves it to routes and RBAC, which match methods exactly.',
    applies: (i, o, n) => o.kind === 'accept' && n.kind === 'reject' && /HPE_INVALID_METHOD/.test((n as { reason: string }).reason) && !/^(GET|POST|PUT|DELETE|PATCH|OPTIONS|HEAD|CONNECT|TRACE) /.test(requestLine(i)),
  },
  'no Host in HTTP/1.1': {
    why: 'RFC 9112 3.2: a 1.1 request without Host is refused with 400. node:http does it in its server, Trellis in src/proxy/http1/server.ts ("missing Host header") after the head parser, which is what is compared here: both refuse, one layer apart.',
    applies: (i, o, n) => o.kind === 'accept' && o.host === null && n.kind === 'reject' && lacksHost(i),
  },
  'more than one Host': {
    why: 'RFC 9112 3.2: a server MUST answer 400 to a request with more than one Host field; node:http takes the first.',
    applies: (i, o, n) => o.kind === 'reject' && n.kind === 'accept' && (headOf(i).match(/\r\nhost\s*:/gi) ?? []).length > 1,
  },
  'TE in HTTP/1.0': {
    why: 'RFC 9112 6.1: a 1.0 message with Transfer-Encoding is to be treated as faulty (its framing cannot be trusted); Trellis refuses it, llhttp decodes the chunks.',
    applies: (i, o, n) => o.kind === 'reject' && n.kind === 'accept' && /HTTP\/1\.0\r\n/.test(i) && /transfer-encoding/i.test(i),
  },
  'transfer codings other than chunked alone': {
    why: 'RFC 9112 6.1: a server that does not understand a transfer coding answers 501. Trellis decodes only "chunked" and would have to forward gzip-coded bytes it cannot frame, so it refuses "gzip, chunked"; llhttp accepts it. Refusing is the safe side.',
    applies: (i, o, n) => o.kind === 'reject' && /Transfer-Encoding/.test(o.reason) && n.kind === 'accept',
  },
  'extra whitespace in the request line': {
    why: 'RFC 9112 3: method SP request-target SP version, one space each; llhttp skips extra spaces, Trellis refuses (a target that starts with a space is read differently by different servers).',
    applies: (i, o, n) => o.kind === 'reject' && n.kind === 'accept' && /  /.test(requestLine(i)),
  },
  'HTTP versions other than 1.0 and 1.1': {
    why: 'RFC 9112 2.3: Trellis speaks 1.0 and 1.1 on this codec and refuses other versions; llhttp accepts "HTTP/2.0" in a text request line.',
    applies: (i, o, n) => o.kind === 'reject' && /protocol version/.test(o.reason) && n.kind === 'accept',
  },
  'characters RFC 3986 does not allow in a target': {
    why: 'llhttp refuses " < > \\ ^ ` { | } and non-ASCII bytes in the target; Trellis accepts them in the head, then refuses targets that are not origin-, absolute-, authority- or asterisk-form (server.ts) and percent-encodes such bytes in origin-form paths before routing (path normalization, docs/security.md), so no hop after the proxy sees them raw.',
    applies: (i, o, n) => o.kind === 'accept' && n.kind === 'reject' && /HPE_INVALID_URL/.test((n as { reason: string }).reason) && /["<>\\^`{|}\x80-\xff]/.test(requestLine(i)),
  },
  'chunk extensions': {
    why: 'RFC 9112 7.1.1: chunk extensions are for the next hop to ignore; Trellis skips them (refusing only control characters) and never forwards them (bodies are re-chunked), while llhttp validates their token / quoted-string syntax. No hop after the proxy sees the extension.',
    applies: (i, o, n) => o.kind === 'accept' && n.kind === 'reject' && /chunked/i.test(headOf(i)) && /\r\n[0-9a-fA-F]+;[^\r\n]*[ "=][^\r\n]*\r\n/.test(i.slice(headOf(i).length)),
  },
  'framing fields in trailers': {
    why: 'RFC 9110 6.5.1: a trailer must not carry framing fields; llhttp refuses a Content-Length trailer, Trellis drops it (parseTrailers) and keeps the rest.',
    applies: (i, o, n) => o.kind === 'accept' && n.kind === 'reject' && /0\r\n[\s\S]*content-length/i.test(i.slice(headOf(i).length)),
  },
};

function same(a: Verdict, b: Verdict): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind !== 'accept' || b.kind !== 'accept') return true;
  return a.method === b.method && a.target === b.target && a.host === b.host && a.body === b.body && JSON.stringify(a.headers) === JSON.stringify(b.headers);
}

async function compare(t: import('node:test').TestContext, inputs: [string, string][]): Promise<{ agreed: number; explained: Map<string, number> }> {
  const node = await nodeServer(t);
  const unexplained: string[] = [];
  const explained = new Map<string, number>();
  let agreed = 0;
  for (const [label, input] of inputs) {
    const bytes = Buffer.from(input, 'latin1');
    const ours = trellis(bytes);
    const theirs = await node(bytes);
    // "incomplete" on one side (waiting for more bytes) against a reject on
    // the other is no disagreement about what the bytes mean.
    if (same(ours, theirs) || (ours.kind === 'incomplete' && theirs.kind === 'reject') || (ours.kind === 'reject' && theirs.kind === 'incomplete')) {
      agreed++;
      continue;
    }
    const why = Object.entries(DIFFERENCES).find(([, d]) => d.applies(input, ours, theirs));
    if (why) explained.set(why[0], (explained.get(why[0]) ?? 0) + 1);
    else unexplained.push(`${label}: ${JSON.stringify(input)}\n  trellis: ${JSON.stringify(ours)}\n  llhttp:  ${JSON.stringify(theirs)}`);
  }
  assert.deepEqual(unexplained, [], `unexplained disagreements:\n${unexplained.join('\n')}`);
  return { agreed, explained };
}

test('generated valid requests: Trellis and llhttp read the same method, target, headers and body', async (t) => {
  const r = rng(13);
  const inputs: [string, string][] = Array.from({ length: 200 }, (_, i) => [`valid #${i}`, validRequest(r)]);
  const { agreed, explained } = await compare(t, inputs);
  t.diagnostic(`${agreed}/200 agree; explained: ${JSON.stringify(Object.fromEntries(explained))}`);
  assert.ok(agreed >= 190, `${agreed} of 200`);
});

test('the request smuggling catalogue: agreement or an explained, safe difference', async (t) => {
  const { agreed, explained } = await compare(t, Object.entries(CASES));
  t.diagnostic(`${agreed}/${Object.keys(CASES).length} agree; explained: ${JSON.stringify(Object.fromEntries(explained))}`);
  // The framing cases that matter for smuggling: both refuse.
  for (const k of ['CL and TE', 'TE and CL', 'two different CL', 'TE gzip, chunked', 'TE chunked, gzip', 'TE with space before colon', 'TE obs-folded', 'bare LF line ends', 'chunk size overflow']) {
    assert.equal(trellis(Buffer.from(CASES[k]!, 'latin1')).kind, 'reject', k);
  }
});

test('mutated requests (one hostile byte inserted or replaced): agreement or an explained difference', async (t) => {
  const r = rng(1313);
  const inputs: [string, string][] = Array.from({ length: 300 }, (_, i) => [`mutant #${i}`, mutate(validRequest(r), r)]);
  const { agreed, explained } = await compare(t, inputs);
  t.diagnostic(`${agreed}/300 agree; explained: ${JSON.stringify(Object.fromEntries(explained))}`);
});
