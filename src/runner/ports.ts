// Free ports for a sidecar: bind port 0, read the port, close. Another
// process may take a port between the close and the sidecar's bind; the
// sidecar then fails to start and the runner says which port.
import net from 'node:net';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port: 0, exclusive: true }, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** `n` distinct free ports. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out = new Set<number>();
  for (let i = 0; out.size < n && i < n * 10; i++) out.add(await freePort(host));
  if (out.size < n) throw new Error(`could not find ${n} free ports on ${host}`);
  return [...out];
}
