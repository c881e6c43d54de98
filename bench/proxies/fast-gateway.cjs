// fast-gateway 5 (restana + fast-proxy-lite on node:http's keep-alive Agent), one catch-all route.
// Env: PORT (listen, 127.0.0.1), UPSTREAM_HOST (default 127.0.0.1), UPSTREAM_PORT.
'use strict';
const gateway = require('fast-gateway');

const port = Number(process.env.PORT);
const target = `http://${process.env.UPSTREAM_HOST || '127.0.0.1'}:${Number(process.env.UPSTREAM_PORT)}`;

const server = gateway({
  enableServicesEndpoint: false,
  routes: [{ prefix: '', target }],
});
server.start(port, '127.0.0.1');

function stop() {
  Promise.resolve(server.close()).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
