import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePort, parseUpstream } from './run.ts';

test('--port and --upstream parsing names the flag and the reason', () => {
  assert.deepEqual(parsePort('9080'), { port: 9080, protocol: 'http' });
  assert.deepEqual(parsePort('50051:grpc'), { port: 50051, protocol: 'grpc' });
  assert.match(parsePort('9080:udp') as string, /--port 9080:udp: protocol must be one of/);
  assert.match(parsePort('0') as string, /port must be 1-65535/);
  assert.match(parsePort('x') as string, /expected PORT, PORT:PROTOCOL or PORT:PROTOCOL:NAME/);
  assert.deepEqual(parsePort('9081:http:web'), { port: 9081, protocol: 'http', name: 'web' });
  assert.match(parsePort('9081:http:Bad_Name') as string, /expected PORT/);
  assert.deepEqual(parseUpstream('ratings:50051=7001'), { service: 'ratings', port: 50051, localPort: 7001 });
  assert.deepEqual(parseUpstream('db.data:5432=7002'), { service: 'db', namespace: 'data', port: 5432, localPort: 7002 });
  assert.deepEqual(parseUpstream('db:5432'), { service: 'db', port: 5432, localPort: 0 });
  assert.match(parseUpstream('db') as string, /expected SERVICE\[\.NAMESPACE\]:PORT\[=LOCALPORT\]/);
  assert.match(parseUpstream('db:5432=70000') as string, /ports must be 1-65535/);
});
