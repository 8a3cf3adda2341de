// A plain HTTP app: answers its NAME on 127.0.0.1:PORT (the caller's mesh
// identity in x-peer when its sidecar vouches for one; `?chunked` answers in
// two writes); on SIGTERM it
// closes and exits 0 after writing "sigterm" to MARK (if set).
import http from 'node:http';
import { writeFileSync } from 'node:fs';

const [port, name] = [Number(process.argv[2]), process.argv[3] ?? 'app'];
const server = http.createServer((req, res) => {
  res.setHeader('x-app', name);
  // Who called, as the inbound sidecar vouches for it (mTLS only).
  const peer = req.headers['x-trellis-peer-identity'];
  if (typeof peer === 'string') res.setHeader('x-peer', peer);
  // `?chunked`: the answer in two writes a moment apart, as streaming apps
  // send it (the second small write is the one Nagle would hold back).
  if (req.url?.endsWith('?chunked')) {
    res.write(`${name} `);
    setTimeout(() => res.end(req.url), 1);
    return;
  }
  res.end(`${name} ${req.url}`);
});
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  if (process.env.MARK) writeFileSync(process.env.MARK, 'sigterm');
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
