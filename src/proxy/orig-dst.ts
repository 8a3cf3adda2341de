// The original destination of a connection REDIRECTed by iptables
// (SO_ORIGINAL_DST), read by the small N-API addon in native/orig-dst
// (built by `npm install`, see scripts/build-native.ts). Node has no API for
// it: getsockopt must be called on the socket's file descriptor.
//
// loadOrigDst() never throws: when the addon is not built it says why, so
// transparent mode can refuse to start with a clear message and its tests
// can skip with the reason.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Socket } from 'node:net';
import type { OriginalDst } from './listener.ts';

interface Addon {
  getOriginalDst(fd: number, family: 4 | 6): { address: string; port: number } | { error: string; errno: number };
}

export type OrigDstReader = (socket: Socket) => OriginalDst | undefined;

export type LoadResult = { ok: true; read: OrigDstReader; readFd: Addon['getOriginalDst'] } | { ok: false; code: 'ORIG_DST_ADDON_MISSING' | 'ORIG_DST_ADDON_LOAD_FAILED'; reason: string };

export const ADDON_PATH = path.resolve(import.meta.dirname, '..', '..', 'native', 'orig-dst', 'build', 'Release', 'orig_dst.node');

let cached: LoadResult | undefined;

export function loadOrigDst(addonPath: string = ADDON_PATH): LoadResult {
  if (cached && addonPath === ADDON_PATH) return cached;
  let result: LoadResult;
  if (!existsSync(addonPath)) {
    result = {
      ok: false,
      code: 'ORIG_DST_ADDON_MISSING',
      reason: `the SO_ORIGINAL_DST addon is not built (${addonPath} missing); run \`node scripts/build-native.ts\` (needs g++, make, python3 and Node headers)`,
    };
  } else {
    try {
      const addon = createRequire(import.meta.url)(addonPath) as Addon;
      result = { ok: true, readFd: addon.getOriginalDst, read: (socket) => readSocket(addon, socket) };
    } catch (err) {
      result = { ok: false, code: 'ORIG_DST_ADDON_LOAD_FAILED', reason: `cannot load ${addonPath}: ${(err as Error).message}` };
    }
  }
  if (addonPath === ADDON_PATH) cached = result;
  return result;
}

function readSocket(addon: Addon, socket: Socket): OriginalDst | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: those need SOL_IP.
  const local = socket.localAddress ?? '';
  const family = net.isIPv6(local) && !local.startsWith('::ffff:') ? 6 : 4;
  const r = addon.getOriginalDst(fd, family);
  return 'error' in r ? undefined : r;
}
