// http-proxy 1.18 behind a plain node:http server, with a keep-alive http.Agent to the upstream.
// Env: PORT (listen, 127.0.0.1), UPSTREAM_HOST (default 127.0.0.1), UPSTREAM_PORT.
'use strict';
const http = require('node:http');
const httpProxy = require('http-proxy');

const port = Number(process.env.PORT);
const target = `http://${process.env.UPSTREAM_HOST || '127.0.0.1'}:${Number(process.env.UPSTREAM_PORT)}`;

const agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target, agent, xfwd: false });
proxy.on('error', (err, req, res) => {
  if (res && typeof res.writeHead === 'function' && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway\n');
  } else if (res) {
    res.destroy();
  }
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1');

function stop() {
  server.close();
  agent.destroy();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
