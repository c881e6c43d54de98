/**
 * @module test/helpers/raw
 * Raw-socket HTTP for tests that must send bytes no well-behaved client would: write them as they are, read
 * everything until the server closes or a short idle timeout, and parse what came back. Also an upstream
 * recorder that counts every connection and byte reaching a real upstream, so a test can prove that nothing
 * (not even an unparsed fragment) got through.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TestUpstream } from './upstream.js';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawResult {
  /** Everything the server sent. */
  raw: Buffer;
  /** The responses parsed from `raw`, in order (a second one would mean a request was smuggled). */
  responses: RawResponse[];
  /** The first response's status, 0 when none came. */
  status: number;
  /** True when the server closed the connection (rather than our idle timeout ending the read). */
  closed: boolean;
}

export interface RawOptions {
  /** Stop reading after this long without data (ms). */
  idleMs?: number;
  /** Hard limit on the whole exchange (ms). */
  totalMs?: number;
  /** Write the payload in these pieces, pausing between them (to cross TCP segments). */
  pieces?: Array<string | Buffer>;
  pauseMs?: number;
  /** Keep the write side open after writing (default: keep open; a half-close can change server behaviour). */
  endAfterWrite?: boolean;
  /** Speak TLS with this SNI name (certificates are not verified: these tests are about HTTP parsing). */
  tlsServername?: string;
}

/** Send raw bytes to 127.0.0.1:port and collect the reply. Always resolves (errors end the read). */
export function rawExchange(port: number, payload: string | Buffer, opts: RawOptions = {}): Promise<RawResult> {
  const idleMs = opts.idleMs ?? 1500;
  const totalMs = opts.totalMs ?? 10000;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let settled = false;
    const sock: Socket = opts.tlsServername
      ? tlsConnect({ host: '127.0.0.1', port, servername: opts.tlsServername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : connect({ host: '127.0.0.1', port });
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      clearTimeout(total);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const responses = parseResponses(raw);
      resolve({ raw, responses, status: responses[0]?.status ?? 0, closed });
    };
    let idle = setTimeout(finish, idleMs);
    const total = setTimeout(finish, totalMs);
    const bump = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
    };
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      bump();
    });
    sock.on('end', () => {
      closed = true;
      finish();
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('error', () => {
      closed = true;
      finish();
    });
    sock.on(opts.tlsServername ? 'secureConnect' : 'connect', async () => {
      const pieces = opts.pieces ?? [payload];
      for (let i = 0; i < pieces.length; i++) {
        if (settled || sock.destroyed) return;
        sock.write(pieces[i]!);
        bump();
        if (i < pieces.length - 1) await new Promise((r) => setTimeout(r, opts.pauseMs ?? 50));
      }
      if (opts.endAfterWrite === true) sock.end();
    });
  });
}

/** Parse consecutive HTTP/1.1 responses (content-length, chunked, or until the end). Best effort. */
export function parseResponses(raw: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let text = raw.toString('latin1');
  while (text.startsWith('HTTP/')) {
    const headEnd = text.indexOf('\r\n\r\n');
    if (headEnd === -1) break;
    const lines = text.slice(0, headEnd).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let rest = text.slice(headEnd + 4);
    let body = '';
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = rest.slice(0, n);
      rest = rest.slice(n);
    } else if ((headers['transfer-encoding'] ?? '').toLowerCase() === 'chunked') {
      for (;;) {
        const eol = rest.indexOf('\r\n');
        if (eol === -1) break;
        const size = parseInt(rest.slice(0, eol), 16);
        if (!Number.isFinite(size)) break;
        body += rest.slice(eol + 2, eol + 2 + size);
        rest = rest.slice(eol + 2 + size + 2);
        if (size === 0) break;
      }
    } else if (status >= 200 && status !== 204 && status !== 304) {
      body = rest;
      rest = '';
    }
    out.push({ status, headers, body });
    text = rest;
  }
  return out;
}

export interface UpstreamTraffic {
  connections: number;
  requests: number;
  bytes: number;
}

/** Counts every byte that reaches a test upstream's sockets (in addition to its own request log). */
export function recordTraffic(up: TestUpstream): { snapshot(): UpstreamTraffic } {
  let bytes = 0;
  up.server.on('connection', (sock) => {
    sock.on('data', (c: Buffer) => {
      bytes += c.length;
    });
  });
  return {
    snapshot: () => ({ connections: up.connections, requests: up.seen.length, bytes }),
  };
}

/** Wait until `check` holds or `ms` passes; returns whether it held. */
export async function waitFor(check: () => boolean, ms = 2000, step = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, step));
  }
  return check();
}

export interface RequestFate {
  url: string;
  /** The upstream read the whole request body. */
  completed: boolean;
  /** The request's connection went away before the body was complete. */
  aborted: boolean;
}

/** Follows every request a test upstream receives to its end: completed, or aborted mid-body. */
export function trackRequests(up: TestUpstream): RequestFate[] {
  const fates: RequestFate[] = [];
  up.server.on('request', (req: import('node:http').IncomingMessage) => {
    const fate: RequestFate = { url: req.url ?? '', completed: false, aborted: false };
    fates.push(fate);
    req.on('end', () => {
      fate.completed = true;
    });
    req.on('close', () => {
      if (!fate.completed) fate.aborted = true;
    });
    req.on('error', () => {
      fate.aborted = true;
    });
  });
  return fates;
}
