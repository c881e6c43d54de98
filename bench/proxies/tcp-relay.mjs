// Not an HTTP proxy: a TCP relay that pairs each client connection with its own upstream connection and copies
// bytes both ways, parsing nothing. Every Node.js HTTP proxy does at least this much work per request (the same
// reads and writes through node's net sockets), so its cost is the floor for them all on this machine.
// Opt-in reference (--proxies tcp-relay,...); it is not in the default run.
// Env: PORT (listen, 127.0.0.1), UPSTREAM_HOST (default 127.0.0.1), UPSTREAM_PORT.
import net from 'node:net';

const port = Number(process.env.PORT);
const upstream = { host: process.env.UPSTREAM_HOST || '127.0.0.1', port: Number(process.env.UPSTREAM_PORT) };

/** Copy from `from` to `to`, pausing the reader while the writer's buffer is full. */
function pipeRaw(from, to) {
  from.on('data', (chunk) => {
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
}

const server = net.createServer({ noDelay: true }, (client) => {
  const up = net.connect({ ...upstream, noDelay: true });
  pipeRaw(client, up);
  pipeRaw(up, client);
  const close = () => {
    client.destroy();
    up.destroy();
  };
  for (const s of [client, up]) {
    s.on('error', close);
    s.on('close', close);
  }
});
server.listen(port, '127.0.0.1');

function stop() {
  server.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
