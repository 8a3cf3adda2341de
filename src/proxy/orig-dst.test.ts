import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { loadOrigDst } from './orig-dst.ts';

test('a missing addon is a value with a reason, not a throw', () => {
  const r = loadOrigDst('/nonexistent/orig_dst.node');
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.code, 'ORIG_DST_ADDON_MISSING');
    assert.match(r.reason, /build-native/);
  }
});

test('the addon reads a socket; without a REDIRECT there is no original destination', async (t) => {
  const r = loadOrigDst();
  if (!r.ok) {
    t.skip(`addon not built: ${r.reason}`);
    return;
  }
  assert.throws(() => (r.readFd as unknown as (x: string) => void)('x'), /getOriginalDst/);
  const server = net.createServer();
  t.after(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.after(() => client.destroy());
  const s = await accepted;
  t.after(() => s.destroy());
  // Loopback without NAT: the kernel may know the tuple (conntrack loaded)
  // and answer the real destination, or answer ENOENT; never a different port.
  const got = r.read(s);
  if (got) assert.deepEqual(got, { address: '127.0.0.1', port: s.localPort });
  const bad = r.readFd(999999, 4);
  assert.ok('error' in bad && typeof bad.errno === 'number');
});
