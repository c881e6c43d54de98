// @fastify/http-proxy 11 on fastify 5 (@fastify/reply-from, which uses undici), one catch-all prefix.
// Env: PORT (listen, 127.0.0.1), UPSTREAM_HOST (default 127.0.0.1), UPSTREAM_PORT.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const port = Number(process.env.PORT);
const upstream = `http://${process.env.UPSTREAM_HOST || '127.0.0.1'}:${Number(process.env.UPSTREAM_PORT)}`;

const app = Fastify({ logger: false });
await app.register(proxy, { upstream, prefix: '/', http2: false });
await app.listen({ port, host: '127.0.0.1' });

function stop() {
  app.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
