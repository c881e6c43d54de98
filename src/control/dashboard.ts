/**
 * @module control/dashboard
 * Serves the dashboard (the single-page app built into dashboard/dist) on the control plane's port at `/`:
 * hashed assets with a year-long immutable cache, index.html for every client-side route, never cached, with
 * a strict Content-Security-Policy whose style nonce is fresh on every answer. The admin API's own paths
 * (/api/, /admin/) are never answered with the app.
 *
 * The per-route traffic summary the overview charts (GET /api/v1/tenants/{tenant}/metrics) is made by
 * control/gateway-metrics, re-exported here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ERRORS } from '../core/errors.js';

/** The placeholder the dashboard build writes where the per-response nonce goes (vite.config.ts `html.cspNonce`). */
export const NONCE_PLACEHOLDER = 'GATEHOUSE_CSP_NONCE';

/** dist/src/control/dashboard.js -> <package>/dashboard/dist */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt']);

interface Asset {
  body: Buffer;
  br: Buffer | null;
  gzip: Buffer | null;
  type: string;
  etag: string;
  /** Content-hashed file names (assets/) never change: cached for a year. */
  immutable: boolean;
}

export interface DashboardOptions {
  /** The built app: index.html, assets/ and public files. Default: the package's dashboard/dist. */
  dir?: string;
  logger?: Pick<Logger, 'warn' | 'info'>;
}

/**
 * The Content-Security-Policy of the dashboard. Scripts only from this origin (the build has no inline
 * script). Styles from this origin, plus <style> elements carrying this answer's nonce: Mantine writes its
 * theme's CSS variables into one at run time, and the scroll lock of modal dialogs another; no
 * 'unsafe-inline'. Style properties set through the CSSOM (element.style) are not subject to CSP.
 */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** Read the built app into memory (a few hundred kB compressed), compressed once here rather than per request. */
function loadAssets(dir: string): { index: string | null; assets: Map<string, Asset> } {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(dir, 'index.html'))) return { index: null, assets };
  let index: string | null = null;
  for (const file of walk(dir)) {
    const url = `/${relative(dir, file).split(sep).join('/')}`;
    const body = readFileSync(file);
    if (url === '/index.html') {
      index = body.toString('utf8');
      continue;
    }
    const ext = extname(file).toLowerCase();
    const big = COMPRESSIBLE.has(ext) && body.length > 1024;
    assets.set(url, {
      body,
      br: big ? brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }) : null,
      gzip: big ? gzipSync(body, { level: 9 }) : null,
      type: TYPES[ext] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      immutable: url.startsWith('/assets/'),
    });
  }
  return { index, assets };
}

function accepts(req: FastifyRequest, coding: string): boolean {
  const h = req.headers['accept-encoding'];
  if (typeof h !== 'string') return false;
  return h.split(',').some((part) => {
    const [name, ...params] = part.trim().split(';');
    if (name!.trim().toLowerCase() !== coding) return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** Paths that belong to the admin API: never answered with the app, so API clients get the API's JSON 404. */
function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/') || path === '/admin' || path.startsWith('/admin/');
}

/**
 * Register the dashboard's routes on the control plane's fastify instance (before it listens). When the app
 * is not built, `/` answers 404 saying how to build it, and the API is unaffected.
 */
export function registerDashboard(app: FastifyInstance, opts: DashboardOptions = {}): void {
  const dir = opts.dir ?? DEFAULT_DASHBOARD_DIR;
  const { index, assets } = loadAssets(dir);
  if (index === null) opts.logger?.warn({ dir }, 'the dashboard is not built (npm run build:dashboard): / answers 404');

  const notBuilt = (reply: FastifyReply) =>
    reply
      .status(ERRORS.GH_ERR_ROUTE_NOT_FOUND.status)
      .header('content-type', 'application/json')
      .header('cache-control', 'no-store')
      .send(JSON.stringify({ error: { code: 'GH_ERR_ROUTE_NOT_FOUND', message: 'the dashboard is not built: run "npm run build:dashboard" (npm ci builds it)' } }));

  const sendIndex = (reply: FastifyReply) => {
    if (index === null) return notBuilt(reply);
    // 128 bits from the CSPRNG, new on every answer.
    const nonce = randomBytes(16).toString('base64');
    return reply
      .status(200)
      .headers(SECURITY_HEADERS)
      .header('content-security-policy', contentSecurityPolicy(nonce))
      .header('content-type', TYPES['.html']!)
      .header('cache-control', 'no-cache')
      .send(index.split(NONCE_PLACEHOLDER).join(nonce));
  };

  const sendAsset = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    reply.headers(SECURITY_HEADERS).header('content-type', a.type).header('etag', a.etag).header('vary', 'accept-encoding');
    reply.header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'public, max-age=3600');
    const inm = req.headers['if-none-match'];
    if (typeof inm === 'string' && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === a.etag)) return reply.status(304).send();
    if (a.br && accepts(req, 'br')) return reply.header('content-encoding', 'br').send(a.br);
    if (a.gzip && accepts(req, 'gzip')) return reply.header('content-encoding', 'gzip').send(a.gzip);
    return reply.send(a.body);
  };

  app.get('/', (_req, reply) => sendIndex(reply));
  app.get('/*', (req, reply) => {
    const path = (req.raw.url ?? '/').split('?')[0]!;
    if (isApiPath(path)) return reply.callNotFound();
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return reply.callNotFound();
    }
    // Dot segments and NULs name no file of the build and no page of the app.
    if (decoded.includes('\0') || /(^|\/)\.\.?(\/|$)/.test(decoded)) return reply.callNotFound();
    if (decoded === '/index.html') return sendIndex(reply);
    // Only files that are in the build are served: the map is the whole namespace, so no path escapes it.
    const a = assets.get(decoded);
    if (a) return sendAsset(req, reply, a);
    // A missing file (a stale hashed asset, a typo) is a 404, not the app: only extension-less paths are
    // client-side routes.
    if (decoded.startsWith('/assets/') || /\.[A-Za-z0-9]{1,8}$/.test(decoded)) return reply.callNotFound();
    return sendIndex(reply);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The overview's traffic summary: read from the gateways' status ports by control/gateway-metrics.

export { summarizeRouteMetrics, type RouteCounters, type TenantMetrics } from './gateway-metrics.js';
