// Loopback helpers: free ports and a readiness probe.
import http from 'node:http';
import net from 'node:net';

export const HOST = '127.0.0.1';

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One GET; resolves { status, length, headers } or rejects. Bounded by timeoutMs. `headers`: extra request headers. */
export function probe(port, path, { timeoutMs = 1000, host, keepBody = false, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: HOST, port, path, agent: false, timeout: timeoutMs, headers: host ? { ...headers, host } : headers },
      (res) => {
        let length = 0;
        const chunks = [];
        res.on('data', (c) => {
          length += c.length;
          if (keepBody && length < 4 << 20) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode, length, headers: res.headers, body: keepBody ? Buffer.concat(chunks).toString('utf8') : undefined }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Polls until GET path answers 200 with the expected body length, at most timeoutMs.
 * Stops early when proc (if given) has exited. Returns { ok, ms, last }.
 */
export async function waitReady(port, path, { expectLength, timeoutMs = 10000, proc, host } = {}) {
  const start = Date.now();
  let last = 'no answer';
  for (let i = 0; i < 100000 && Date.now() - start < timeoutMs; i++) {
    if (proc?.exited) {
      return { ok: false, ms: Date.now() - start, last: `process exited (code ${proc.exitCode}, signal ${proc.signal})` };
    }
    try {
      const r = await probe(port, path, { timeoutMs: Math.max(200, Math.min(2000, timeoutMs - (Date.now() - start))), host });
      if (r.status === 200 && (expectLength === undefined || r.length === expectLength)) {
        return { ok: true, ms: Date.now() - start };
      }
      last = `status ${r.status}, ${r.length} bytes${expectLength !== undefined ? ` (want 200, ${expectLength} bytes)` : ''}`;
    } catch (e) {
      last = e.code || e.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ok: false, ms: Date.now() - start, last };
}
