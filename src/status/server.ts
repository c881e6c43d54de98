/**
 * @module status/server
 * The gateway status port: /healthz (process alive), /readyz (config loaded and workers serving),
 * /metrics (Prometheus text, merged across workers).
 */
import { createServer, type Server } from 'node:http';

export interface StatusProvider {
  healthy(): boolean;
  ready(): { ready: boolean; detail: Record<string, unknown> };
  metrics(): Promise<string>;
}

export function startStatusServer(host: string, port: number, provider: StatusProvider): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: { code: 'GH_ERR_METHOD_NOT_ALLOWED', message: 'method not allowed' } });
    if (path === '/healthz') return provider.healthy() ? json(200, { status: 'ok' }) : json(503, { status: 'unhealthy' });
    if (path === '/readyz') {
      const r = provider.ready();
      return json(r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.detail });
    }
    if (path === '/metrics') {
      provider.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
        () => json(500, { error: { code: 'GH_ERR_INTERNAL', message: 'internal gateway error' } }),
      );
      return;
    }
    json(404, { error: { code: 'GH_ERR_ROUTE_NOT_FOUND', message: 'no route matches the request' } });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
