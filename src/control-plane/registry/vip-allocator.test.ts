import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openMemoryStore } from '../store/memory.ts';
import { startVipAllocator, type VipSyncReport } from './vip-allocator.ts';
import { VIP_CLAIMS_PREFIX, VIPS_PREFIX, vipKey } from './vip.ts';

test('VIP allocator: services get VIPs when created and lose them when deleted', async (t) => {
  const store = openMemoryStore();
  t.after(() => store.close());
  await store.put('/trellis/resources/Service/shop/cart', '{}');
  const reports: VipSyncReport[] = [];
  let wake: () => void = () => undefined;
  const alloc = startVipAllocator(store, {
    onSync: (r) => {
      reports.push(r);
      wake();
    },
    onError: (e) => assert.fail(String(e)),
  });
  t.after(() => alloc.stop());
  const until = async (what: string, cond: () => Promise<boolean>) => {
    const deadline = Date.now() + 3_000;
    while (!(await cond())) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 100);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
  };
  await until('cart VIP', async () => (await store.get(vipKey('shop', 'cart'))) !== null);
  await store.put('/trellis/resources/Service/shop/checkout', '{}');
  await store.put('/trellis/resources/HTTPRoute/shop/not-a-service', '{}');
  await until('checkout VIP', async () => (await store.get(vipKey('shop', 'checkout'))) !== null);
  assert.equal((await store.list(VIPS_PREFIX)).items.length, 2);
  await store.delete('/trellis/resources/Service/shop/cart');
  await until('cart VIP freed', async () => (await store.get(vipKey('shop', 'cart'))) === null);
  await alloc.idle();
  assert.equal((await store.list(VIP_CLAIMS_PREFIX)).items.length, 1);
  assert.ok(reports.some((r) => r.released.includes('shop/cart')));
});
