// The reference proxy: a minimal node:http server that streams every request to the upstream through an
// undici Pool (pool.stream), forwarding method, url and headers and piping the bodies both ways.
// It does no gateway work at all (no routing, no plugins): it is the floor for a Node.js proxy's cost.
// Env: PORT (listen, 127.0.0.1), UPSTREAM_HOST (default 127.0.0.1), UPSTREAM_PORT.
import http from 'node:http';
import { Pool } from 'undici';

const port = Number(process.env.PORT);
const upstream = `http://${process.env.UPSTREAM_HOST || '127.0.0.1'}:${Number(process.env.UPSTREAM_PORT)}`;

const pool = new Pool(upstream, {
  connections: 256,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 600_000,
});

// Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded in either direction.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

function forwardHeaders(src) {
  const out = {};
  for (const name in src) if (!HOP.has(name)) out[name] = src[name];
  return out;
}

const server = http.createServer((req, res) => {
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool.stream(
    {
      path: req.url,
      method: req.method,
      headers: forwardHeaders(req.headers),
      body: hasBody ? req : null,
      opaque: res,
    },
    ({ statusCode, headers, opaque }) => {
      opaque.writeHead(statusCode, forwardHeaders(headers));
      return opaque;
    },
    (err) => {
      if (!err) return;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway\n');
      } else {
        res.destroy(err);
      }
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1');

function stop() {
  server.close();
  pool.destroy().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
