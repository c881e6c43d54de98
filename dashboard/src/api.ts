/**
 * The admin API client: JSON over fetch with the session cookie, the CSRF token on every change, and the
 * API's error shape ({error: {code, message, details}}) turned into ApiError with field problems.
 */

export interface FieldProblem {
  path?: string;
  message: string;
  [k: string]: unknown;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: FieldProblem[] = [],
  ) {
    super(message);
  }

  /** Field problems by path ("paths[0]" -> "must match pattern ..."), for forms. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) if (typeof d.path === 'string' && d.path && !(d.path in out)) out[d.path] = d.message;
    return out;
  }
}

let csrfToken: string | null = sessionStorage.getItem('gh.csrf');
let onUnauthorized: (() => void) | null = null;

export function setCsrfToken(t: string | null): void {
  csrfToken = t;
  if (t) sessionStorage.setItem('gh.csrf', t);
  else sessionStorage.removeItem('gh.csrf');
}

/** Called when the session has ended (401 on a call made with it): the app shows the login page. */
export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

export async function api<T = any>(method: string, path: string, body?: unknown, opts: { quiet401?: boolean; headers?: Record<string, string> } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'GH_ERR_NETWORK', 'The control plane cannot be reached. Check that it is running.');
  }
  const text = await res.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'GH_ERR_BAD_RESPONSE', `Unexpected answer (${res.status}) from the control plane.`);
    }
  }
  if (!res.ok) {
    const e = data?.error ?? {};
    const err = new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? res.statusText, Array.isArray(e.details) ? e.details : []);
    if (res.status === 401 && !opts.quiet401) onUnauthorized?.();
    throw err;
  }
  return data as T;
}

export const get = <T = any>(path: string) => api<T>('GET', path);
export const post = <T = any>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const put = <T = any>(path: string, body: unknown) => api<T>('PUT', path, body);
export const patch = <T = any>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = <T = any>(path: string) => api<T>('DELETE', path);

/** A path segment, escaped. */
export const seg = (s: string | number) => encodeURIComponent(String(s));

export const V1 = '/api/v1';
export const tenantPath = (tenant: string) => `${V1}/tenants/${seg(tenant)}`;

// ---- shapes the API returns

export type Role = 'admin' | 'editor' | 'reviewer' | 'viewer';
export const ROLES: Role[] = ['admin', 'editor', 'reviewer', 'viewer'];

export interface User {
  id: string;
  username: string;
  superadmin: boolean;
  disabled: boolean;
  createdAt: string;
}

export interface Me {
  user: User;
  memberships: Array<{ tenant: string; userId: string; role: Role }>;
  token: null | { id: string; tenant: string | null; role: Role | null };
  csrfToken?: string;
}

export interface Tenant {
  id: string;
  name: string;
  reviewRequired: boolean;
  skipReviewRoles: Role[];
  createdAt: string;
}

export interface EntityView {
  id: string;
  draft: Record<string, unknown> | null;
  live: Record<string, unknown> | null;
  revision: number;
  liveVersion: number;
  pending: boolean;
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

export interface VersionView {
  tenant: string;
  kind: string;
  id: string;
  version: number;
  content: Record<string, unknown> | null;
  author: string;
  publishedBy: string;
  reviewedBy: string | null;
  changeId: number | null;
  channel: 'live' | 'gray';
  createdAt: string;
  note: string | null;
}

export interface Change {
  path: string;
  op: 'add' | 'remove' | 'replace';
  from?: unknown;
  to?: unknown;
}

export interface ChangeItemView {
  op: 'publish' | 'gray' | 'promote';
  kind: string;
  id: string;
  baseVersion: number;
  content?: Record<string, unknown> | null;
  live?: Record<string, unknown> | null;
  liveVersion?: number;
  changes?: Change[];
  instances?: string[];
  version?: number | null;
  grayVersion?: number;
  note?: string;
}

export interface ChangeRequest {
  id: number;
  tenant: string;
  title: string;
  description: string | null;
  status: 'open' | 'approved' | 'rejected' | 'withdrawn';
  author: string;
  createdAt: string;
  updatedAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  comment: string | null;
  items: ChangeItemView[];
}

export interface GrayRelease {
  routeId: string;
  version: number | null;
  baseVersion: number;
  instances: Array<{ id: string; state: 'serving' | 'pending' | 'gone' | 'unknown' }>;
  createdBy: string;
  createdAt: string;
  changeId: number | null;
}

export interface Instance {
  id: string;
  hostname?: string;
  addresses?: Record<string, unknown>;
  /** Where the control plane reads the instance's metrics (null when it advertises none). */
  statusUrl?: string | null;
  version?: string;
  labels?: Record<string, string>;
  revision?: number;
  pid?: number;
  heartbeat?: string;
  configSourceOk?: boolean;
  gray?: Array<{ tenant: string; routeId: string; version: number }>;
}

export interface PluginInfo {
  name: string;
  version: string;
  priority: number;
  description: string;
  scopes: string[];
  schema: JsonSchema;
  credentialSchema: JsonSchema | null;
}

export interface Schemas {
  entities: Record<string, JsonSchema>;
  plugins: PluginInfo[];
}

export interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  writeOnly?: boolean;
  uniqueItems?: boolean;
  [k: string]: unknown;
}

export interface AuditRecord {
  seq: number;
  at: string;
  actor: string;
  source: string;
  tenant: string | null;
  kind: string;
  entityId: string | null;
  action: string;
  before: unknown;
  after: unknown;
}

export interface TokenView {
  id: string;
  name: string;
  tenant: string | null;
  role: Role | null;
  expiresAt: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}
