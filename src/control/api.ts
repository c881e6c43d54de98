/**
 * @module control/api
 * The admin API's building blocks shared by its route modules: roles and permissions, the route table's
 * entry type, the request context, the error type, and the JSON diff shown for versions and changes.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { ERRORS, type ErrorCode } from '../core/errors.js';
import type { ApiToken, Role, User } from '../store/types.js';

export type Permission = 'read' | 'write' | 'publish' | 'review' | 'manage';

/**
 * What each role may do in its tenant. Editors write drafts and publish them (to review, where the tenant
 * requires it); reviewers approve or reject others' changes; viewers only read.
 */
export const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set(['read', 'write', 'publish', 'review', 'manage']),
  editor: new Set(['read', 'write', 'publish']),
  reviewer: new Set(['read', 'review']),
  viewer: new Set(['read']),
};

export type Access = { kind: 'public' } | { kind: 'user' } | { kind: 'superadmin' } | { kind: 'tenant'; perm: Permission };

export interface Principal {
  user: User;
  token: ApiToken | null;
  /** Set when authenticated by the session cookie (then changes need the CSRF token). */
  csrfToken: string | null;
}

export interface Ctx {
  req: FastifyRequest;
  reply: FastifyReply;
  principal: Principal | null;
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: unknown;
}

export interface ApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  access: Access;
  summary: string;
  body?: TSchema;
  handler(ctx: Ctx): Promise<unknown>;
}

/** An error answered with its code from the error table, and optional details (field problems...). */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message ?? ERRORS[code].message);
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The differences between two JSON values, by field path ("plugins.cors.allowOrigins[1]"). */
export function diff(a: unknown, b: unknown, path = ''): Array<{ path: string; op: 'add' | 'remove' | 'replace'; from?: unknown; to?: unknown }> {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const here = path || '(entity)';
  if (isObject(a) && isObject(b)) {
    const out: ReturnType<typeof diff> = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in b)) out.push({ path: p, op: 'remove', from: a[k] });
      else if (!(k in a)) out.push({ path: p, op: 'add', to: b[k] });
      else out.push(...diff(a[k], b[k], p));
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) return a.flatMap((x, i) => diff(x, b[i], `${path}[${i}]`));
  if (a === null || a === undefined) return [{ path: here, op: 'add', to: b }];
  if (b === null || b === undefined) return [{ path: here, op: 'remove', from: a }];
  return [{ path: here, op: 'replace', from: a, to: b }];
}


/** An integer query parameter within [min, max] (the default when absent), else 400 naming it. */
export function intParam(query: Record<string, string | undefined>, name: string, def: number, min: number, max: number): number {
  const raw = query[name];
  const v = raw !== undefined ? Number(raw) : def;
  if (!Number.isInteger(v) || v < min || v > max) {
    const message = max === Number.MAX_SAFE_INTEGER ? (min === 0 ? 'must be a non-negative integer' : `must be an integer from ${min}`) : `must be an integer from ${min} to ${max}`;
    throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: name, message }]);
  }
  return v;
}

/** limit (1 to `max`, default 50) and offset (0 or more) of a listing. */
export function pageParams(query: Record<string, string | undefined>, max = 500): { limit: number; offset: number } {
  return { limit: intParam(query, 'limit', 50, 1, max), offset: intParam(query, 'offset', 0, 0, Number.MAX_SAFE_INTEGER) };
}
