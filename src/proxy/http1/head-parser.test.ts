import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseContentLength, parseRequestHead, parseResponseHead } from './head-parser.ts';

function req(s: string) {
  return parseRequestHead(Buffer.from(s, 'latin1'), 0, 1024);
}

test('request head: fields, hop-by-hop removal and framing facts', () => {
  const r = req('\r\nPOST /a?b=1 HTTP/1.1\r\nHost: h.test\r\nContent-Type: text/plain\r\nConnection: Keep-Alive, X-Drop\r\n' +
    'X-Drop: 1\r\nContent-Length: 5\r\nExpect: 100-continue\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Empty:\r\n\r\nhello');
  assert.equal(r.kind, 'request');
  if (r.kind !== 'request') return;
  assert.equal(r.method, 'POST');
  assert.equal(r.target, '/a?b=1');
  assert.equal(r.version, '1.1');
  assert.equal(r.host, 'h.test');
  assert.equal(r.contentLength, 5);
  assert.equal(r.chunked, false);
  assert.equal(r.expectContinue, true);
  assert.equal(r.connectionKeepAlive, true);
  assert.equal(r.upgrade, 'h2c');
  assert.equal(r.connectionUpgrade, false);
  assert.deepEqual(r.headers, ['content-type', 'text/plain', 'te', 'trailers', 'x-empty', '']);
  assert.equal(r.end, Buffer.byteLength('\r\nPOST /a?b=1 HTTP/1.1\r\nHost: h.test\r\nContent-Type: text/plain\r\nConnection: Keep-Alive, X-Drop\r\nX-Drop: 1\r\nContent-Length: 5\r\nExpect: 100-continue\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Empty:\r\n\r\n'));
});

test('request head: incomplete until the blank line; errors name the reason', () => {
  assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\n').kind, 'incomplete');
  assert.equal(req('GET / HTT').kind, 'incomplete');
  const big = req(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}`);
  assert.deepEqual(big.kind === 'error' && big.code, 'HEADERS_TOO_LARGE');
  const cases: Array<[string, RegExp]> = [
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', /both Content-Length and Transfer-Encoding/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', /different values/],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n', /Transfer-Encoding/],
    ['GET / HTTP/1.1\r\nHost : a\r\n\r\n', /whitespace between/],
    ['GET / HTTP/1.1\r\nX: 1\r\n\tfold\r\n\r\n', /folding/],
    ['GET / HTTP/1.1\r\nX\x7f: 1\r\n\r\n', /control character/],
    ['GET / HTTP/1.1\r\nX@: 1\r\n\r\n', /invalid character in header name/],
    ['GET / HTTP/1.1\r\nNoColon\r\n\r\n', /without a colon/],
    ['GET / HTTP/1.1\r\n: v\r\n\r\n', /empty header name/],
    ['G(T / HTTP/1.1\r\n\r\n', /invalid method/],
    ['GET /\r\n\r\n', /request line/],
    ['GET / FTP/1.1\r\n\r\n', /version/],
  ];
  for (const [s, reason] of cases) {
    const r = req(s);
    assert.equal(r.kind, 'error', s);
    if (r.kind === 'error') {
      assert.equal(r.code, 'BAD_REQUEST');
      assert.match(r.reason, reason, s);
    }
  }
});

test('content-length values', () => {
  assert.equal(parseContentLength('0'), 0);
  assert.equal(parseContentLength('123'), 123);
  assert.equal(parseContentLength('7, 7'), 7);
  for (const bad of ['', ' ', '-1', '+1', '1.0', '0x10', '1,2', '1,', '1234567890123456']) assert.equal(parseContentLength(bad), -2, bad);
});

test('response head: status, version, kept content-length and stripped hop-by-hop', () => {
  const r = parseResponseHead(Buffer.from('HTTP/1.0 203 Whatever It Is\r\nContent-Length: 3, 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\r\nabc'), 0);
  assert.equal(r.kind, 'response');
  if (r.kind !== 'response') return;
  assert.equal(r.status, 203);
  assert.equal(r.version, '1.0');
  assert.equal(r.connectionKeepAlive, true);
  assert.deepEqual(r.headers, ['content-length', '3', 'x-a', '1']);
  assert.equal(parseResponseHead(Buffer.from('HTTP/1.1 200\r\n\r\n'), 0).kind, 'response');
  for (const bad of ['HTTP/2.0 200 OK\r\n\r\n', 'HTTP/1.1 20 OK\r\n\r\n', 'HTTP/1.1 2000 OK\r\n\r\n', 'ICY 200 OK\r\n\r\n', 'HTTP/1.1 099 X\r\n\r\n']) {
    assert.equal(parseResponseHead(Buffer.from(bad), 0).kind, 'error', bad);
  }
});

test('empty lines before a request line: a few are skipped, endless ones refused', () => {
  assert.equal(req('\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n').kind, 'request');
  const r = req('\r\n'.repeat(100));
  assert.equal(r.kind, 'error');
});

test('a CR, LF, tab or control character inside the request line is refused (found by the llhttp differential test)', () => {
  for (const line of ['GET /a\rb HTTP/1.1', 'GET /a\nb HTTP/1.1', 'GET /a\tb HTTP/1.1', 'GET /a\x7fb HTTP/1.1']) {
    const r = parseRequestHead(Buffer.from(`${line}\r\nHost: a\r\n\r\n`, 'latin1'), 0);
    assert.equal(r.kind, 'error', JSON.stringify(line));
  }
});
