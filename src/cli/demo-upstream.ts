/**
 * @module cli/demo-upstream
 * A small built-in HTTP service for the quick start, so a newcomer sees traffic flow through the gateway
 * before having services of their own. It answers with what it received.
 */
import { createServer, type Server } from 'node:http';

export function startDemoUpstream(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 65536) chunks.push(c);
    });
    req.on('end', () => {
      const body = JSON.stringify(
        {
          service: 'gatehouse-demo',
          method: req.method,
          url: req.url,
          headers: req.headers,
          bodyBytes: size,
          body: size > 0 && size <= 65536 ? Buffer.concat(chunks).toString('utf8') : undefined,
        },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
