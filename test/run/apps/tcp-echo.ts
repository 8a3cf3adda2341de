// A TCP echo app on 127.0.0.1:PORT, prefixing replies with NAME; exits 0 on SIGTERM.
import net from 'node:net';

const [port, name] = [Number(process.argv[2]), process.argv[3] ?? 'echo'];
const server = net.createServer((s) => s.on('data', (d) => s.write(`${name}: ${String(d)}`)).on('end', () => s.end()).on('error', () => {}));
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
