/**
 * @module status/server
 * The gateway status port: /healthz (process alive), /readyz (config loaded and workers serving),
 * /metrics (Prometheus text, merged across workers), and POST /plugins/<plugin>/<action> for plugins' operator
 * actions (proxy-cache purge), run in every worker. It binds to loopback unless configured otherwise.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface StatusProvider {
  healthy(): boolean;
  ready(): { ready: boolean; detail: Record<string, unknown> };
  metrics(): Promise<string>;
  /** Run a plugin's control action everywhere it applies; the answer is sent as JSON with its status. */
  control?(plugin: string, action: string, args: Record<string, unknown>): Promise<{ status: number; body: unknown }>;
}

/** Control requests are small: a key or a list of them. */
const MAX_CONTROL_BODY = 64 * 1024;

function readJson(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_CONTROL_BODY) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        resolve(v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null);
      } catch {
        resolve(null);
      }
    });
    req.on('error', () => resolve(null));
  });
}

export function startStatusServer(host: string, port: number, provider: StatusProvider): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const control = /^\/plugins\/([a-z][a-z0-9-]*)\/([a-z][a-z0-9-]*)$/.exec(path ?? '');
    if (control !== null && provider.control) {
      if (req.method !== 'POST') return json(405, { error: { code: 'GH_ERR_METHOD_NOT_ALLOWED', message: 'method not allowed' } });
      readJson(req).then((args) => {
        if (args === null) return json(400, { error: { code: 'GH_ERR_BAD_REQUEST', message: 'the body must be a JSON object of at most 64 KiB' } });
        provider.control!(control[1]!, control[2]!, args).then(
          (r) => json(r.status, r.body),
          () => json(500, { error: { code: 'GH_ERR_INTERNAL', message: 'internal gateway error' } }),
        );
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: { code: 'GH_ERR_METHOD_NOT_ALLOWED', message: 'method not allowed' } });
    if (path === '/healthz') return provider.healthy() ? json(200, { status: 'ok' }) : json(503, { status: 'unhealthy' });
    if (path === '/readyz') {
      const r = provider.ready();
      // Ready but serving without its config source (etcd down) or a discovery source (last known nodes): still
      // 200, since the gateway serves.
      const degraded = (r.detail.configSource as { ok?: boolean } | undefined)?.ok === false || (r.detail.discovery as { ok?: boolean } | undefined)?.ok === false;
      return json(r.ready ? 200 : 503, { status: r.ready ? (degraded ? 'degraded' : 'ready') : 'not ready', ...r.detail });
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
