/**
 * @module control/server
 * The admin API (port 9180, /api/v1): login and sessions, API tokens, users, tenants and members, the config
 * entities of each tenant (draft, publish, versions), the audit trail and the API's own OpenAPI document.
 *
 * Every route is declared in one table with the access it needs (public, any user, superadmin, or a
 * permission within the tenant named in the path), and one pre-handler enforces it: there is no route whose
 * check lives in its handler alone. Every mutating call writes an audit record with its change, secrets
 * redacted, in the same transaction as the change.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Type, type TSchema } from '@sinclair/typebox';
import { ERRORS, type ErrorCode } from '../core/errors.js';
import type { PluginRegistry } from '../dataplane/plugins/registry.js';
import { Certificate } from '../model/certificate.js';
import { Consumer } from '../model/consumer.js';
import { Route } from '../model/route.js';
import { Service } from '../model/service.js';
import { Upstream } from '../model/upstream.js';
import { validateSchema } from '../model/validate.js';
import { ENTITY_KINDS, ROLES, StoreConflict, type ApiToken, type AuditInput, type EntityKind, type EntityRecord, type Role, type Store, type User } from '../store/types.js';
import { applyGray, compileLive, compileTenant, idField, validateCompiled, type GrayOverride, type StoredEntity } from './compile.js';
import { redactEntity, restoreSecrets } from './redact.js';
import { constantTimeEqual, dummyHash, hashPassword, newApiToken, newId, newSessionId, sha256, verifyPassword } from './secrets.js';
import { LoginLimiter } from './login-limiter.js';
import { ApiError, diff, intParam, isObject, pageParams, ROLE_PERMISSIONS, type ApiRoute, type Ctx, type Permission, type Principal } from './api.js';
import { lowerRole, ReleaseControls, type LiveChange, type ReleaseHost } from './release.js';
import type { TenantMetrics } from './gateway-metrics.js';

export { ApiError, ROLE_PERMISSIONS, diff, type Access, type ApiRoute, type Ctx, type Permission, type Principal } from './api.js';

export interface UpstreamNodeInfo {
  host: string;
  port: number;
  weight: number;
  metadata?: Record<string, unknown>;
  source: string;
  health: 'healthy' | 'unhealthy' | 'unknown';
}

export interface ControlPlaneOptions {
  store: Store;
  plugins: PluginRegistry;
  logger: Logger;
  /** Session lifetime, ms (default 12 h). */
  sessionTtl?: number;
  /**
   * Called after every publish, with the new config revision and what was published together ('gray': a
   * route's gray release started, stopped or was promoted).
   */
  onPublish?: (revision: number, changes: Array<{ tenant: string; kind: EntityKind | 'gray'; id: string }>) => void;
  /**
   * The nodes an upstream runs with: its static nodes and those its discovery source reports, with their
   * health where this process runs the gateway (`upstreamKey` is the id gateways use: "<tenant>.<id>").
   */
  upstreamNodes?: (upstreamKey: string, content: Record<string, unknown>) => Promise<{ nodes: UpstreamNodeInfo[]; discovery: unknown }>;
  /** The tenant's traffic counters from the gateways, for GET /api/v1/tenants/{tenant}/metrics (absent: that route answers 404). */
  metrics?: (tenant: string) => Promise<TenantMetrics>;
  /** The gateway instances serving this control plane's config (etcd registrations, or the local gateway). */
  instances?: () => Promise<Array<{ id: string; gray?: Array<{ tenant: string; routeId: string; version: number }> }>>;
}

const ENTITY_SCHEMAS: Record<Exclude<EntityKind, 'global-plugins'>, TSchema> = {
  routes: Route,
  services: Service,
  upstreams: Upstream,
  consumers: Consumer,
  certificates: Certificate,
};

const SkipReviewRoles = Type.Array(Type.Union(ROLES.map((r) => Type.Literal(r))), { uniqueItems: true, description: 'Roles that may publish with skipReview when review is required.' });
const TENANT_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
const ENTITY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,94}$/;
const SESSION_COOKIE = 'gh_session';

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}


/** Problems about the compiled config name ids with their tenant prefix: tell a tenant its own ids as it wrote them. */
function localIds(message: string, tenant: string): string {
  return message.split(`"${tenant}.`).join('"');
}

/** RFC 7396 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class ControlPlane implements ReleaseHost {
  readonly app: FastifyInstance;
  readonly routes: ApiRoute[] = [];
  readonly store: Store;
  readonly plugins: PluginRegistry;
  private readonly release: ReleaseControls;
  private readonly log: Logger;
  private readonly sessionTtl: number;
  private readonly logins = new LoginLimiter();

  constructor(private readonly opts: ControlPlaneOptions) {
    this.store = opts.store;
    this.plugins = opts.plugins;
    this.log = opts.logger;
    this.sessionTtl = opts.sessionTtl ?? 12 * 3600 * 1000;
    this.release = new ReleaseControls(this);
    this.app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024, trustProxy: false, return503OnClosing: true });
    this.app.setErrorHandler((err, _req, reply) => this.sendError(reply, err));
    // JSON bodies with fastify's own parser (it refuses __proto__ and constructor.prototype); an empty body
    // with a JSON content type is no body, as curl sends for an action such as withdraw.
    const json = this.app.getDefaultJsonParser('error', 'error');
    this.app.removeContentTypeParser('application/json');
    this.app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
      if (body === '') done(null, undefined);
      else json(req, body as string, done);
    });
    this.app.setNotFoundHandler((_req, reply) => this.sendError(reply, new ApiError('GH_ERR_ROUTE_NOT_FOUND', 'no admin API route matches the request')));
    this.defineRoutes();
    for (const r of this.routes) this.register(r);
    this.app.get('/api/v1/openapi.json', async () => this.openapi());
  }

  private sendError(reply: FastifyReply, err: unknown): void {
    let e: ApiError;
    if (err instanceof ApiError) e = err;
    else if (err instanceof StoreConflict) {
      e = err.reason === 'revision' ? new ApiError('GH_ERR_ADMIN_STALE', err.message) : err.reason === 'missing' ? new ApiError('GH_ERR_ADMIN_NOT_FOUND', err.message) : new ApiError('GH_ERR_ADMIN_CONFLICT', err.message, err.details);
    } else {
      const fe = err as { statusCode?: number; code?: string; message?: string };
      if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new ApiError('GH_ERR_BODY_TOO_LARGE');
      else if (fe.statusCode === 400 || fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') e = new ApiError('GH_ERR_ADMIN_INVALID', 'the body must be JSON');
      else if (fe.statusCode === 415) e = new ApiError('GH_ERR_ADMIN_INVALID', 'the body must be application/json');
      else {
        this.log.error({ err: (err as Error)?.name, code: fe.code }, 'admin API request failed');
        e = new ApiError('GH_ERR_INTERNAL', 'internal error');
      }
    }
    const body: Record<string, unknown> = { code: e.code, message: e.message };
    if (e.details !== undefined) body.details = e.details;
    void reply.status(ERRORS[e.code].status).headers({ 'content-type': 'application/json', ...e.headers }).send(JSON.stringify({ error: body }));
  }

  // ---- authentication and access

  /** Who is calling: a Bearer token, or the session cookie. Null when neither is given; throws when one is bad. */
  private async authenticate(req: FastifyRequest): Promise<Principal | null> {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(auth);
      if (!m) throw new ApiError('GH_ERR_AUTH_INVALID');
      const token = await this.store.getTokenByHash(sha256(m[1]!));
      if (!token || (token.expiresAt !== null && Date.parse(token.expiresAt) <= Date.now())) throw new ApiError('GH_ERR_AUTH_INVALID');
      const user = await this.store.getUserById(token.userId);
      if (!user || user.disabled) throw new ApiError('GH_ERR_AUTH_INVALID');
      void this.store.touchToken(token.id, new Date().toISOString()).catch(() => {});
      return { user, token, csrfToken: null };
    }
    const sid = cookie(req.headers.cookie, SESSION_COOKIE);
    if (sid === undefined) return null;
    const session = await this.store.getSession(sha256(sid));
    if (!session || Date.parse(session.expiresAt) <= Date.now()) throw new ApiError('GH_ERR_AUTH_INVALID', 'the session has ended; log in again');
    const user = await this.store.getUserById(session.userId);
    if (!user || user.disabled) throw new ApiError('GH_ERR_AUTH_INVALID');
    return { user, token: null, csrfToken: session.csrfToken };
  }

  /** The permissions a principal has in a tenant. */
  async permissions(p: Principal, tenant: string): Promise<ReadonlySet<Permission>> {
    if (p.token?.tenant && p.token.tenant !== tenant) return new Set();
    let perms: Set<Permission>;
    if (p.user.superadmin) perms = new Set(ROLE_PERMISSIONS.admin);
    else {
      const m = await this.store.getMembership(tenant, p.user.id);
      perms = new Set(m ? ROLE_PERMISSIONS[m.role] : []);
    }
    if (p.token?.role) for (const x of [...perms]) if (!ROLE_PERMISSIONS[p.token.role].has(x)) perms.delete(x);
    return perms;
  }

  async effectiveRole(p: Principal, tenant: string): Promise<Role | null> {
    if (p.token?.tenant && p.token.tenant !== tenant) return null;
    let role: Role | null = p.user.superadmin ? 'admin' : ((await this.store.getMembership(tenant, p.user.id))?.role ?? null);
    if (role !== null && p.token?.role) role = lowerRole(role, p.token.role);
    return role;
  }

  async published(changes: Array<{ tenant: string; kind: EntityKind | 'gray'; id: string }>): Promise<void> {
    this.opts.onPublish?.(await this.store.liveRevision(), changes);
  }

  async instances(): Promise<Array<{ id: string; gray?: Array<{ tenant: string; routeId: string; version: number }> }>> {
    return this.opts.instances ? this.opts.instances() : [];
  }

  private isSuperadmin(p: Principal): boolean {
    return p.user.superadmin && (p.token === null || (p.token.tenant === null && p.token.role === null));
  }

  private register(r: ApiRoute): void {
    this.app.route({
      method: r.method,
      url: r.url,
      handler: async (req, reply) => {
        const principal = r.access.kind === 'public' ? null : await this.authenticate(req);
        const params = req.params as Record<string, string>;
        if (r.access.kind !== 'public') {
          if (principal === null) throw new ApiError('GH_ERR_AUTH_REQUIRED', undefined, undefined, { 'www-authenticate': 'Bearer realm="gatehouse-admin"' });
          // A change made with the cookie must prove it comes from the dashboard (the cookie alone is sent by any site).
          if (r.method !== 'GET' && principal.csrfToken !== null) {
            const sent = req.headers['x-csrf-token'];
            if (typeof sent !== 'string' || !constantTimeEqual(sent, principal.csrfToken)) throw new ApiError('GH_ERR_ADMIN_CSRF');
          }
          if (r.access.kind === 'superadmin' && !this.isSuperadmin(principal)) throw new ApiError('GH_ERR_ACCESS_DENIED');
          if (r.access.kind === 'tenant') {
            const tenant = params.tenant!;
            const perms = await this.permissions(principal, tenant);
            // Not even "read": the tenant is not the caller's to know about.
            if (!perms.has('read') || !(await this.store.getTenant(tenant))) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no tenant "${tenant}"`);
            if (!perms.has(r.access.perm)) throw new ApiError('GH_ERR_ACCESS_DENIED');
          }
        }
        let body: unknown = req.body;
        if (r.body) {
          const v = validateSchema(r.body, body ?? {});
          if (!v.ok) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, v.problems);
          body = v.value;
        }
        const out = await r.handler({ req, reply, principal, params, query: req.query as Record<string, string | undefined>, body });
        if (reply.sent) return;
        if (out === undefined) return reply.status(reply.statusCode === 200 ? 204 : reply.statusCode).send();
        return reply.header('content-type', 'application/json').send(JSON.stringify(out));
      },
    });
  }

  audit(ctx: Ctx, a: Omit<AuditInput, 'actor' | 'source'>): AuditInput {
    return { actor: ctx.principal?.user.username ?? 'anonymous', source: ctx.req.ip, ...a };
  }

  // ---- routes

  private defineRoutes(): void {
    const add = (r: ApiRoute) => this.routes.push(r);
    const userView = (u: User) => ({ id: u.id, username: u.username, superadmin: u.superadmin, disabled: u.disabled, createdAt: u.createdAt });

    add({
      method: 'POST',
      url: '/api/v1/login',
      access: { kind: 'public' },
      summary: 'Log in: sets the session cookie and returns the CSRF token for changes made with it.',
      body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 128 }), password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const { username, password } = ctx.body as { username: string; password: string };
        const limited = this.logins.check(username, ctx.req.ip);
        if (limited > 0) throw new ApiError('GH_ERR_ADMIN_LOGIN_LIMITED', undefined, undefined, { 'retry-after': String(Math.ceil(limited / 1000)) });
        const user = await this.store.getUserByName(username);
        // The same work for a missing user as for a wrong password: the answer time tells nothing.
        const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash()));
        if (!user || !ok || user.disabled) {
          this.logins.failed(username, ctx.req.ip);
          await this.store.appendAudit({ actor: username.slice(0, 128), source: ctx.req.ip, tenant: null, kind: 'session', entityId: null, action: 'login.failed', before: null, after: null });
          throw new ApiError('GH_ERR_AUTH_INVALID', 'wrong user name or password');
        }
        this.logins.succeeded(username, ctx.req.ip);
        const sid = newSessionId();
        const csrfToken = newSessionId();
        const expiresAt = new Date(Date.now() + this.sessionTtl).toISOString();
        await this.store.createSession({ hash: sha256(sid), userId: user.id, csrfToken, expiresAt });
        await this.store.appendAudit({ actor: user.username, source: ctx.req.ip, tenant: null, kind: 'session', entityId: null, action: 'login', before: null, after: null });
        const secure = (ctx.req.raw.socket as { encrypted?: boolean }).encrypted ? '; Secure' : '';
        ctx.reply.header('set-cookie', `${SESSION_COOKIE}=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(this.sessionTtl / 1000)}${secure}`);
        return { user: userView(user), csrfToken, expiresAt };
      },
    });

    add({
      method: 'POST',
      url: '/api/v1/logout',
      access: { kind: 'user' },
      summary: 'End the session of the cookie sent.',
      handler: async (ctx) => {
        const sid = cookie(ctx.req.headers.cookie, SESSION_COOKIE);
        if (sid !== undefined) await this.store.deleteSession(sha256(sid));
        ctx.reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
        return undefined;
      },
    });

    add({
      method: 'GET',
      url: '/api/v1/me',
      access: { kind: 'user' },
      summary: 'The calling user, their tenants and roles (and, with a session cookie, its CSRF token).',
      handler: async (ctx) => {
        const p = ctx.principal!;
        // The session's CSRF token too (a new dashboard tab needs it; other sites cannot read this answer: no CORS).
        return {
          user: userView(p.user),
          memberships: await this.store.listMemberships(p.user.id),
          token: p.token ? { id: p.token.id, tenant: p.token.tenant, role: p.token.role } : null,
          ...(p.csrfToken !== null ? { csrfToken: p.csrfToken } : {}),
        };
      },
    });

    // ---- tokens
    add({
      method: 'POST',
      url: '/api/v1/tokens',
      access: { kind: 'user' },
      summary: 'Create an API token for the calling user (shown once), optionally narrowed to a tenant and role, with an expiry.',
      body: Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 128 }),
          tenant: Type.Optional(Type.String({ pattern: TENANT_ID.source })),
          role: Type.Optional(Type.Union(ROLES.map((r) => Type.Literal(r)))),
          expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
        },
        { additionalProperties: false },
      ),
      handler: async (ctx) => {
        const b = ctx.body as { name: string; tenant?: string; role?: Role; expiresAt?: string };
        const p = ctx.principal!;
        // A token cannot do more than the session or token that makes it.
        if (p.token !== null && (p.token.tenant !== null || p.token.role !== null) && (b.tenant === undefined || b.role === undefined)) {
          throw new ApiError('GH_ERR_ACCESS_DENIED', 'a narrowed token can only create tokens narrowed as much');
        }
        if (b.role !== undefined && b.tenant === undefined) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'tenant', message: 'is required with role' }]);
        if (b.tenant !== undefined) {
          const perms = await this.permissions(p, b.tenant);
          if (!perms.has('read')) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no tenant "${b.tenant}"`);
          if (b.role !== undefined && [...ROLE_PERMISSIONS[b.role]].some((x) => !perms.has(x))) throw new ApiError('GH_ERR_ACCESS_DENIED', 'the role is above your own in that tenant');
        }
        if (b.expiresAt !== undefined && Date.parse(b.expiresAt) <= Date.now()) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'expiresAt', message: 'is in the past' }]);
        const token = newApiToken();
        const rec = await this.store.createToken(
          { id: newId(), userId: p.user.id, name: b.name, hash: sha256(token), tenant: b.tenant ?? null, role: b.role ?? null, expiresAt: b.expiresAt ?? null },
          this.audit(ctx, { tenant: b.tenant ?? null, kind: 'token', entityId: null, action: 'token.create', before: null, after: { name: b.name, tenant: b.tenant ?? null, role: b.role ?? null, expiresAt: b.expiresAt ?? null } }),
        );
        ctx.reply.status(201);
        return { id: rec.id, token, name: rec.name, tenant: rec.tenant, role: rec.role, expiresAt: rec.expiresAt };
      },
    });
    add({
      method: 'GET',
      url: '/api/v1/tokens',
      access: { kind: 'user' },
      summary: 'The calling user\'s API tokens (never the token values).',
      handler: async (ctx) => ({
        items: (await this.store.listTokens(ctx.principal!.user.id)).map((t) => ({ id: t.id, name: t.name, tenant: t.tenant, role: t.role, expiresAt: t.expiresAt, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt })),
      }),
    });
    add({
      method: 'DELETE',
      url: '/api/v1/tokens/:id',
      access: { kind: 'user' },
      summary: 'Revoke one of the calling user\'s API tokens.',
      handler: async (ctx) => {
        const mine = (await this.store.listTokens(ctx.principal!.user.id)).find((t) => t.id === ctx.params.id);
        if (!mine) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND');
        await this.store.deleteToken(mine.id, this.audit(ctx, { tenant: mine.tenant, kind: 'token', entityId: null, action: 'token.delete', before: { name: mine.name }, after: null }));
        return undefined;
      },
    });

    // ---- users
    add({
      method: 'GET',
      url: '/api/v1/users',
      access: { kind: 'superadmin' },
      summary: 'Every user.',
      handler: async () => ({ items: (await this.store.listUsers()).map(userView) }),
    });
    add({
      method: 'POST',
      url: '/api/v1/users',
      access: { kind: 'superadmin' },
      summary: 'Create a user (superadmin only); the password is stored as an scrypt hash.',
      body: Type.Object(
        {
          username: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$' }),
          password: Type.String({ minLength: 12, maxLength: 1024 }),
          superadmin: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
      handler: async (ctx) => {
        const b = ctx.body as { username: string; password: string; superadmin?: boolean };
        const user = await this.store.createUser(
          { id: newId(), username: b.username, passwordHash: await hashPassword(b.password), superadmin: b.superadmin === true, disabled: false },
          this.audit(ctx, { tenant: null, kind: 'user', entityId: b.username, action: 'user.create', before: null, after: { username: b.username, superadmin: b.superadmin === true } }),
        );
        ctx.reply.status(201);
        return userView(user);
      },
    });

    // ---- tenants and members
    add({
      method: 'GET',
      url: '/api/v1/tenants',
      access: { kind: 'user' },
      summary: 'The tenants the caller can see.',
      handler: async (ctx) => {
        const p = ctx.principal!;
        const all = await this.store.listTenants();
        const visible = [];
        for (const t of all) if ((await this.permissions(p, t.id)).has('read')) visible.push(t);
        return { items: visible };
      },
    });
    add({
      method: 'POST',
      url: '/api/v1/tenants',
      access: { kind: 'superadmin' },
      summary: 'Create a tenant (a product line\'s SaaS id). Review is required unless reviewRequired is false; skipReviewRoles (default ["admin"]) may publish with skipReview.',
      body: Type.Object(
        { id: Type.String({ pattern: TENANT_ID.source }), name: Type.String({ minLength: 1, maxLength: 256 }), reviewRequired: Type.Optional(Type.Boolean()), skipReviewRoles: Type.Optional(SkipReviewRoles) },
        { additionalProperties: false },
      ),
      handler: async (ctx) => {
        const b = ctx.body as { id: string; name: string; reviewRequired?: boolean; skipReviewRoles?: Role[] };
        const t = { id: b.id, name: b.name, reviewRequired: b.reviewRequired !== false, skipReviewRoles: b.skipReviewRoles ?? ['admin' as Role] };
        const out = await this.store.createTenant(t, this.audit(ctx, { tenant: b.id, kind: 'tenant', entityId: b.id, action: 'tenant.create', before: null, after: t }));
        ctx.reply.status(201);
        return out;
      },
    });
    add({
      method: 'GET',
      url: '/api/v1/tenants/:tenant',
      access: { kind: 'tenant', perm: 'read' },
      summary: 'One tenant and its release policy.',
      handler: async (ctx) => this.store.getTenant(ctx.params.tenant!),
    });
    add({
      method: 'PATCH',
      url: '/api/v1/tenants/:tenant',
      access: { kind: 'tenant', perm: 'manage' },
      summary: 'Rename a tenant or change its release policy (reviewRequired, skipReviewRoles); tenant admins.',
      body: Type.Object(
        { name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })), reviewRequired: Type.Optional(Type.Boolean()), skipReviewRoles: Type.Optional(SkipReviewRoles) },
        { additionalProperties: false },
      ),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const b = ctx.body as { name?: string; reviewRequired?: boolean; skipReviewRoles?: Role[] };
        const before = await this.store.getTenant(tenant);
        return this.store.updateTenant(tenant, b, this.audit(ctx, { tenant, kind: 'tenant', entityId: tenant, action: 'tenant.update', before, after: b }));
      },
    });
    add({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/members',
      access: { kind: 'tenant', perm: 'read' },
      summary: 'Members of a tenant and their roles.',
      handler: async (ctx) => {
        const members = await this.store.listMembers(ctx.params.tenant!);
        const out = [];
        for (const m of members) out.push({ user: (await this.store.getUserById(m.userId))?.username ?? m.userId, role: m.role });
        return { items: out };
      },
    });
    const memberUser = async (name: string) => {
      const u = await this.store.getUserByName(name);
      if (!u) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no user "${name}"`);
      return u;
    };
    add({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/members/:user',
      access: { kind: 'tenant', perm: 'read' },
      summary: 'One member\'s role.',
      handler: async (ctx) => {
        const u = await memberUser(ctx.params.user!);
        const m = await this.store.getMembership(ctx.params.tenant!, u.id);
        if (!m) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `"${u.username}" is not a member`);
        return { user: u.username, role: m.role };
      },
    });
    add({
      method: 'PUT',
      url: '/api/v1/tenants/:tenant/members/:user',
      access: { kind: 'tenant', perm: 'manage' },
      summary: 'Give a user a role in the tenant (admin of the tenant).',
      body: Type.Object({ role: Type.Union(ROLES.map((r) => Type.Literal(r))) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const u = await memberUser(ctx.params.user!);
        const role = (ctx.body as { role: Role }).role;
        const before = await this.store.getMembership(ctx.params.tenant!, u.id);
        await this.store.setMembership(ctx.params.tenant!, u.id, role, this.audit(ctx, { tenant: ctx.params.tenant!, kind: 'member', entityId: u.username, action: 'member.set', before: before ? { role: before.role } : null, after: { role } }));
        return { user: u.username, role };
      },
    });
    add({
      method: 'DELETE',
      url: '/api/v1/tenants/:tenant/members/:user',
      access: { kind: 'tenant', perm: 'manage' },
      summary: 'Remove a user from the tenant.',
      handler: async (ctx) => {
        const u = await memberUser(ctx.params.user!);
        const before = await this.store.getMembership(ctx.params.tenant!, u.id);
        if (!before) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `"${u.username}" is not a member`);
        await this.store.setMembership(ctx.params.tenant!, u.id, null, this.audit(ctx, { tenant: ctx.params.tenant!, kind: 'member', entityId: u.username, action: 'member.remove', before: { role: before.role }, after: null }));
        return undefined;
      },
    });

    add({
      method: 'GET',
      url: '/api/v1/instances',
      access: { kind: 'user' },
      summary: 'The gateway instances: id, host, addresses, version, labels, the config revision each runs, last heartbeat.',
      handler: async () => {
        if (!this.opts.instances) return { items: [] };
        try {
          return { items: await this.opts.instances() };
        } catch {
          throw new ApiError('GH_ERR_ADMIN_CONFLICT', 'the instance registry (etcd) cannot be read now');
        }
      },
    });

    add({
      method: 'GET',
      url: '/api/v1/schemas',
      access: { kind: 'user' },
      summary: 'The JSON schemas the API validates with: each entity kind, and each plugin (config, consumer credential, scopes), for generated forms.',
      handler: async () => ({
        entities: ENTITY_SCHEMAS,
        plugins: this.plugins
          .list()
          .map((p) => ({
            name: p.name,
            version: p.version,
            priority: p.priority,
            description: p.description,
            scopes: p.scopes ?? ['route', 'service', 'global', 'consumer'],
            schema: p.schema,
            credentialSchema: p.credentialSchema ?? null,
          }))
          .sort((a, b) => a.name.localeCompare(b.name)),
      }),
    });

    add({
      method: 'GET',
      url: '/api/v1/tenants/:tenant/metrics',
      access: { kind: 'tenant', perm: 'read' },
      summary:
        "Traffic counters of the tenant's routes (requests by status, latency histogram) summed over the gateway instances that answered, each instance's own counters, and which did not answer, for the dashboard's overview; rates come from two readings.",
      handler: async (ctx) => {
        if (!this.opts.metrics) throw new ApiError('GH_ERR_ROUTE_NOT_FOUND', 'this control plane reads no gateway metrics');
        try {
          return await this.opts.metrics(ctx.params.tenant!);
        } catch {
          throw new ApiError('GH_ERR_ADMIN_CONFLICT', 'the gateway metrics cannot be read now');
        }
      },
    });

    // ---- audit
    add({
      method: 'GET',
      url: '/api/v1/audit',
      access: { kind: 'user' },
      summary: 'Audit records, newest first: filter by tenant, user, entity and time. Tenant admins see their tenant; superadmins all.',
      handler: async (ctx) => {
        const q = ctx.query;
        const p = ctx.principal!;
        if (!this.isSuperadmin(p)) {
          if (!q.tenant) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'tenant', message: 'is required (only superadmins read every tenant\'s records)' }]);
          if (!(await this.permissions(p, q.tenant)).has('manage')) throw new ApiError('GH_ERR_ACCESS_DENIED');
        }
        const limit = intParam(q, 'limit', 100, 1, 1000);
        const before = q.before !== undefined ? Number(q.before) : undefined;
        return {
          items: await this.store.queryAudit({ tenant: q.tenant, actor: q.user, kind: q.kind, entityId: q.entity, since: q.since, until: q.until, limit, before }),
        };
      },
    });

    // ---- entities
    for (const kind of ENTITY_KINDS) this.defineEntityRoutes(kind);

    // ---- change requests and gray release
    for (const r of this.release.routes()) add(r);
  }

  private view(e: EntityRecord) {
    return {
      id: e.id,
      draft: redactEntity(e.kind, e.id, e.draft, this.plugins),
      live: redactEntity(e.kind, e.id, e.live, this.plugins),
      revision: e.revision,
      liveVersion: e.liveVersion,
      pending: e.pending,
      createdAt: e.createdAt,
      updatedAt: e.updatedAt,
      updatedBy: e.updatedBy,
    };
  }

  /** All drafts of a tenant (what it would publish), for validating one entity among the others. */
  private async tenantDrafts(tenant: string): Promise<StoredEntity[]> {
    const out: StoredEntity[] = [];
    for (const kind of ENTITY_KINDS) {
      for (const e of await this.allEntities(tenant, kind)) if (e.draft !== null) out.push({ tenant, kind, id: e.id, content: e.draft });
    }
    return out;
  }

  /** Every entity of a kind in a tenant, read page by page. */
  private async allEntities(tenant: string, kind: EntityKind): Promise<EntityRecord[]> {
    const out: EntityRecord[] = [];
    for (;;) {
      const page = await this.store.listEntities(tenant, kind, { limit: 500, offset: out.length });
      out.push(...page.items);
      if (page.items.length === 0 || out.length >= page.total) return out;
    }
  }

  /**
   * The config every gateway would run after these changes to live entities (content null: removed) must be
   * valid as a whole, on every instance: once as it is, and once more with every gray release applied (those
   * added here included, those dropped left out). Else 409 with the problems told in this tenant's terms (its
   * own ids as written, another tenant's consumers not named).
   */
  async checkLive(tenant: string, changes: LiveChange[], refusal: string, gray: { add?: GrayOverride[]; drop?: string[] } = {}): Promise<void> {
    const live = await this.store.live();
    const changed = new Set(changes.map((c) => `${c.kind}/${c.id}`));
    const next: StoredEntity[] = live.entities.filter((x) => !(x.tenant === tenant && changed.has(`${x.kind}/${x.id}`)));
    for (const c of changes) if (c.content !== null) next.push({ tenant, kind: c.kind, id: c.id, content: c.content });
    const grays: GrayOverride[] = [
      ...live.gray.filter((g) => !(g.tenant === tenant && (gray.drop?.includes(g.routeId) || gray.add?.some((a) => a.routeId === g.routeId)))),
      ...(gray.add ?? []),
    ];
    const variants = grays.length ? [next, applyGray(next, grays, null).entities] : [next];
    for (const entities of variants) {
      const r = validateCompiled(compileLive(entities, this.plugins), this.plugins);
      if (r.ok) continue;
      const own = new Set(entities.filter((x) => x.tenant === tenant && x.kind === 'consumers').map((x) => x.id));
      const tell = (m: string) => localIds(m, tenant).replace(/consumer "([^"]*)"/g, (all, name: string) => (own.has(name) ? all : 'a consumer of another tenant'));
      throw new ApiError('GH_ERR_ADMIN_CONFLICT', refusal, [
        ...r.problems.filter((p) => p.tenant === tenant).map((p) => ({ kind: p.kind, id: p.id, path: p.path, message: tell(p.message) })),
        ...(r.problems.some((p) => p.tenant !== tenant) ? [{ message: 'conflicts with another tenant\'s live config' }] : []),
      ]);
    }
  }

  /**
   * Check a draft write with every rule the gateway applies, among the tenant's other drafts: the entity's own
   * problems are refused (400, field paths within it); removing an entity others need is refused (409).
   */
  private async checkDraft(tenant: string, kind: EntityKind, id: string, content: Record<string, unknown> | null): Promise<void> {
    const others = (await this.tenantDrafts(tenant)).filter((e) => !(e.kind === kind && e.id === id));
    const entities = content === null ? others : [...others, { tenant, kind, id, content }];
    const compiled = compileTenant(entities);
    const r = validateCompiled(compiled, this.plugins);
    if (r.ok) {
      if (kind === 'routes' && content !== null) await this.checkCrossTenant(tenant, content);
      return;
    }
    if (content !== null) {
      const own = r.problems.filter((p) => p.kind === kind && p.id === id).map((p) => ({ path: p.path || '(entity)', message: p.message }));
      if (own.length) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, own);
      return;
    }
    // A deletion: what the others lose.
    const broken = r.problems.filter((p) => /does not exist|names (upstream|service)/.test(p.message));
    if (broken.length) {
      throw new ApiError(
        'GH_ERR_ADMIN_CONFLICT',
        `${kind} "${id}" is in use`,
        broken.map((p) => ({ kind: p.kind, id: p.id, path: p.path, message: p.message })),
      );
    }
  }

  /** A route must not claim a host and path another tenant's route serves (draft or live). */
  private async checkCrossTenant(tenant: string, route: Record<string, unknown>): Promise<void> {
    const hosts = (route.hosts as string[] | undefined) ?? [];
    const paths = new Set((route.paths as string[] | undefined) ?? []);
    const methods = (route.methods as string[] | undefined) ?? [];
    for (const t of await this.store.listTenants()) {
      if (t.id === tenant) continue;
      for (const e of await this.allEntities(t.id, 'routes')) {
        for (const other of [e.draft, e.live]) {
          if (!other) continue;
          const oh = (other.hosts as string[] | undefined) ?? [];
          const om = (other.methods as string[] | undefined) ?? [];
          const hostsOverlap = hosts.length === 0 || oh.length === 0 || hosts.some((h) => oh.includes(h));
          const methodsOverlap = methods.length === 0 || om.length === 0 || methods.some((m) => om.includes(m));
          const path = ((other.paths as string[] | undefined) ?? []).find((x) => paths.has(x));
          if (hostsOverlap && methodsOverlap && path !== undefined) {
            throw new ApiError('GH_ERR_ADMIN_CONFLICT', `path "${path}" is already routed by tenant "${t.id}" (route "${e.id}") on the same hosts`, [
              { tenant: t.id, route: e.id, path },
            ]);
          }
        }
      }
    }
  }

  private entityBody(kind: EntityKind, ctx: Ctx, idFromPath?: string): { id: string; content: Record<string, unknown> } {
    const body = ctx.body;
    if (!isObject(body)) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: '(body)', message: 'must be a JSON object' }]);
    if (kind === 'global-plugins') {
      const id = idFromPath ?? (typeof body.name === 'string' ? body.name : undefined);
      if (!id) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'name', message: 'is required: the plugin name' }]);
      const content = idFromPath ? body : ((body.config ?? {}) as Record<string, unknown>);
      if (!isObject(content)) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'config', message: 'must be an object' }]);
      return { id, content };
    }
    const field = idField(kind);
    const given = body[field];
    if (idFromPath !== undefined && given !== undefined && given !== idFromPath) {
      throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: field, message: 'does not match the id in the path' }]);
    }
    const id = idFromPath ?? given;
    if (typeof id !== 'string') throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: field, message: 'is required' }]);
    const { [field]: _drop, ...content } = body;
    return { id, content };
  }

  private checkId(kind: EntityKind, id: string): void {
    if (kind === 'global-plugins') {
      if (!this.plugins.has(id)) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'name', message: `unknown plugin "${id}"` }]);
      return;
    }
    if (!ENTITY_ID.test(id)) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: idField(kind), message: `must match ${ENTITY_ID.source}` }]);
  }

  /** Shape check of one entity against its schema (problems with field paths), before the cross-entity rules. */
  private checkShape(kind: EntityKind, id: string, content: Record<string, unknown>): void {
    if (kind === 'global-plugins') {
      const problems = this.plugins.validate(id, structuredClone(content), '', 'global');
      if (problems.length) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, problems.map((p) => ({ path: p.path.replace(/^\./, '') || '(entity)', message: p.message })));
      return;
    }
    const v = validateSchema(ENTITY_SCHEMAS[kind], { ...structuredClone(content), [idField(kind)]: id });
    if (!v.ok) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, v.problems);
  }

  private etag(e: EntityRecord): string {
    return `"${e.revision}"`;
  }

  private ifMatch(ctx: Ctx): number | undefined {
    const h = ctx.req.headers['if-match'];
    if (h === undefined) return undefined;
    const m = /^(?:W\/)?"(\d+)"$/.exec(String(h).trim());
    if (!m) throw new ApiError('GH_ERR_ADMIN_STALE', 'If-Match must be an ETag this API gave');
    return Number(m[1]);
  }

  private defineEntityRoutes(kind: EntityKind): void {
    const base = `/api/v1/tenants/:tenant/${kind}`;
    const add = (r: ApiRoute) => this.routes.push(r);
    const get = async (ctx: Ctx) => {
      const e = await this.store.getEntity(ctx.params.tenant!, kind, ctx.params.id!);
      if (!e) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no ${kind} "${ctx.params.id}"`);
      return e;
    };
    const write = async (ctx: Ctx, id: string, content: Record<string, unknown> | null, opts: { create?: boolean; expected?: number; action: string; before: EntityRecord | null }) => {
      const tenant = ctx.params.tenant!;
      if (content !== null) {
        this.checkId(kind, id);
        content = restoreSecrets(kind, id, content, opts.before?.draft ?? null, this.plugins);
        this.checkShape(kind, id, content);
      }
      await this.checkDraft(tenant, kind, id, content);
      const e = await this.store.writeDraft(tenant, kind, id, {
        draft: content,
        create: opts.create,
        expectedRevision: opts.expected,
        actor: ctx.principal!.user.username,
        audit: this.audit(ctx, {
          tenant,
          kind,
          entityId: id,
          action: opts.action,
          before: opts.before ? redactEntity(kind, id, opts.before.draft, this.plugins) : null,
          after: redactEntity(kind, id, content, this.plugins),
        }),
      });
      ctx.reply.header('etag', this.etag(e));
      return e;
    };

    add({
      method: 'GET',
      url: base,
      access: { kind: 'tenant', perm: 'read' },
      summary: `List ${kind} (draft and live), with paging (limit, offset) and filters (search in id and name, label=key or key:value).`,
      handler: async (ctx) => {
        const { limit, offset } = pageParams(ctx.query);
        const label = ctx.query.label;
        const colon = label?.indexOf(':') ?? -1;
        const r = await this.store.listEntities(ctx.params.tenant!, kind, {
          limit,
          offset,
          search: ctx.query.search,
          label: label === undefined ? undefined : colon === -1 ? { key: label } : { key: label.slice(0, colon), value: label.slice(colon + 1) },
        });
        return { items: r.items.map((e) => this.view(e)), total: r.total, limit, offset };
      },
    });
    add({
      method: 'POST',
      url: base,
      access: { kind: 'tenant', perm: 'write' },
      summary: `Create a ${kind} draft (the declarative file's shape; nothing is served until published).`,
      handler: async (ctx) => {
        const { id, content } = this.entityBody(kind, ctx);
        const e = await write(ctx, id, content, { create: true, action: `${kind}.create`, before: null });
        ctx.reply.status(201);
        return this.view(e);
      },
    });
    add({
      method: 'GET',
      url: `${base}/:id`,
      access: { kind: 'tenant', perm: 'read' },
      summary: `One ${kind}: its draft and live state; the ETag is the draft's revision.`,
      handler: async (ctx) => {
        const e = await get(ctx);
        ctx.reply.header('etag', this.etag(e));
        return this.view(e);
      },
    });
    add({
      method: 'PUT',
      url: `${base}/:id`,
      access: { kind: 'tenant', perm: 'write' },
      summary: `Replace the ${kind} draft (creates it when missing); If-Match with the ETag refuses a stale write (412).`,
      handler: async (ctx) => {
        const { id, content } = this.entityBody(kind, ctx, ctx.params.id);
        const before = await this.store.getEntity(ctx.params.tenant!, kind, id);
        const e = await write(ctx, id, content, { expected: this.ifMatch(ctx), action: before ? `${kind}.update` : `${kind}.create`, before });
        if (!before) ctx.reply.status(201);
        return this.view(e);
      },
    });
    add({
      method: 'PATCH',
      url: `${base}/:id`,
      access: { kind: 'tenant', perm: 'write' },
      summary: `Change the ${kind} draft with a JSON merge patch (RFC 7396); If-Match as PUT.`,
      handler: async (ctx) => {
        const before = await get(ctx);
        if (before.draft === null) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `${kind} "${before.id}" has its deletion drafted; PUT a new draft instead`);
        if (!isObject(ctx.body)) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: '(body)', message: 'must be a JSON object' }]);
        const field = idField(kind);
        if (kind !== 'global-plugins' && field in ctx.body && ctx.body[field] !== before.id) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: field, message: 'cannot be changed' }]);
        const { [field]: _drop, ...patch } = ctx.body;
        const content = mergePatch(before.draft, patch) as Record<string, unknown>;
        const e = await write(ctx, before.id, content, { expected: this.ifMatch(ctx), action: `${kind}.update`, before });
        return this.view(e);
      },
    });
    add({
      method: 'DELETE',
      url: `${base}/:id`,
      access: { kind: 'tenant', perm: 'write' },
      summary: `Draft the deletion of a ${kind} (published like any change; a never-published draft just goes). 409 while others use it.`,
      handler: async (ctx) => {
        const before = await get(ctx);
        const e = await write(ctx, before.id, null, { expected: this.ifMatch(ctx), action: `${kind}.delete`, before });
        const still = await this.store.getEntity(ctx.params.tenant!, kind, before.id);
        return still ? this.view(still) : { id: e.id, deleted: true };
      },
    });
    add({
      method: 'POST',
      url: `${base}/:id/publish`,
      access: { kind: 'tenant', perm: 'publish' },
      summary: `Publish the ${kind} draft: a new live version at once where the tenant needs no review (or by the skip-review lane, skipReview: true, for the roles the tenant allows), else 202 with the change submitted for review. 409 when the whole live config would be invalid.`,
      body: Type.Object({ note: Type.Optional(Type.String({ maxLength: 1024 })), skipReview: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const e = await get(ctx);
        if (!e.pending) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `${kind} "${e.id}" has no unpublished change`);
        const b = ctx.body as { note?: string; skipReview?: boolean };
        const verb = e.draft === null ? 'Delete' : e.liveVersion === 0 ? 'Create' : 'Update';
        const out = await this.release.release(ctx, tenant, [{ op: 'publish', kind, id: e.id, content: e.draft, baseVersion: e.liveVersion, note: b.note }], {
          skipReview: b.skipReview,
          title: b.note ?? `${verb} ${kind} ${e.id}`,
          note: b.note,
          refusal: 'publishing this would make the live config invalid',
        });
        if (!out.applied) return { change: out.change };
        const after = await this.store.getEntity(tenant, kind, e.id);
        return { version: out.versions[0]!.version, entity: after?.live ? this.view(after) : null };
      },
    });
    if (kind === 'upstreams') {
      add({
        method: 'GET',
        url: `${base}/:id/nodes`,
        access: { kind: 'tenant', perm: 'read' },
        summary: 'The nodes the upstream runs with (its live state, else its draft): static and discovered, with metadata, source and health where known.',
        handler: async (ctx) => {
          const e = await get(ctx);
          const content = e.live ?? e.draft;
          if (!content) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `upstream "${e.id}" has neither a live state nor a draft`);
          if (!this.opts.upstreamNodes) {
            const nodes = ((content.nodes as UpstreamNodeInfo[] | undefined) ?? []).map((n) => ({ host: n.host, port: n.port, weight: n.weight ?? 1, ...(n.metadata ? { metadata: n.metadata } : {}), source: 'static', health: 'unknown' as const }));
            return { items: nodes, discovery: null };
          }
          const r = await this.opts.upstreamNodes(`${e.tenant}.${e.id}`, content);
          return { items: r.nodes, discovery: r.discovery };
        },
      });
    }
    add({
      method: 'GET',
      url: `${base}/:id/versions`,
      access: { kind: 'tenant', perm: 'read' },
      summary: `The published versions of a ${kind}, newest first.`,
      handler: async (ctx) => ({
        items: (await this.store.listVersions(ctx.params.tenant!, kind, ctx.params.id!)).map((v) => ({ ...v, content: redactEntity(kind, v.id, v.content, this.plugins) })),
      }),
    });
    add({
      method: 'GET',
      url: `${base}/:id/versions/:n/diff/:m`,
      access: { kind: 'tenant', perm: 'read' },
      summary: `What changed in a ${kind} from version n to version m: a list of {path, op: add|remove|replace, from, to} (secrets redacted).`,
      handler: async (ctx) => {
        const [n, m] = [Number(ctx.params.n), Number(ctx.params.m)];
        const a = Number.isInteger(n) ? await this.store.getVersion(ctx.params.tenant!, kind, ctx.params.id!, n) : null;
        const b = Number.isInteger(m) ? await this.store.getVersion(ctx.params.tenant!, kind, ctx.params.id!, m) : null;
        if (!a || !b) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no version ${!a ? ctx.params.n : ctx.params.m}`);
        return { from: n, to: m, changes: diff(redactEntity(kind, a.id, a.content, this.plugins), redactEntity(kind, b.id, b.content, this.plugins)) };
      },
    });
    add({
      method: 'POST',
      url: `${base}/:id/rollback`,
      access: { kind: 'tenant', perm: 'publish' },
      summary: `Publish version n's content again as a new version of this ${kind} alone, by the tenant's review policy like any publish; refused while the ${kind} has unpublished changes, and when what it references is gone.`,
      body: Type.Object({ version: Type.Integer({ minimum: 1 }), note: Type.Optional(Type.String({ maxLength: 1024 })), skipReview: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const b = ctx.body as { version: number; note?: string; skipReview?: boolean };
        const v = await this.store.getVersion(tenant, kind, ctx.params.id!, b.version);
        if (!v) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no version ${b.version}`);
        if (v.content === null) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `version ${b.version} is a deletion: delete the ${kind} and publish that instead`);
        const current = await this.store.getEntity(tenant, kind, v.id);
        if (current?.pending) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `${kind} "${v.id}" has unpublished changes: publish or replace them before rolling back`);
        if (current && current.liveVersion === b.version) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `version ${b.version} is the live version already`);
        const note = `rollback to version ${b.version}${b.note ? `: ${b.note}` : ''}`;
        const out = await this.release.release(ctx, tenant, [{ op: 'publish', kind, id: v.id, content: v.content, baseVersion: current?.liveVersion ?? 0, note }], {
          skipReview: b.skipReview,
          title: `Roll back ${kind} ${v.id} to version ${b.version}`,
          description: b.note,
          note,
          refusal: `version ${b.version} no longer fits the live config`,
        });
        if (!out.applied) return { change: out.change };
        const after = await this.store.getEntity(tenant, kind, v.id);
        return { version: out.versions[0]!.version, rolledBackTo: b.version, entity: after?.live ? this.view(after) : null };
      },
    });
    add({
      method: 'GET',
      url: `${base}/:id/versions/:n`,
      access: { kind: 'tenant', perm: 'read' },
      summary: `One published version of a ${kind}.`,
      handler: async (ctx) => {
        const n = Number(ctx.params.n);
        const v = Number.isInteger(n) ? await this.store.getVersion(ctx.params.tenant!, kind, ctx.params.id!, n) : null;
        if (!v) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no version ${ctx.params.n}`);
        return { ...v, content: redactEntity(kind, v.id, v.content, this.plugins) };
      },
    });
  }

  /** The admin API's own OpenAPI 3.1 document, from the route table and the entity schemas. */
  openapi(): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of this.routes) {
      const url = r.url.replace(/:(\w+)/g, '{$1}');
      const params = [...r.url.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
      const kind = ENTITY_KINDS.find((k) => r.url.startsWith(`/api/v1/tenants/:tenant/${k}`));
      let body: TSchema | undefined = r.body;
      if (!body && kind && kind !== 'global-plugins' && (r.method === 'POST' || r.method === 'PUT') && !r.url.endsWith('/publish')) body = ENTITY_SCHEMAS[kind];
      (paths[url] ??= {})[r.method.toLowerCase()] = {
        summary: r.summary,
        parameters: params.length ? params : undefined,
        security: r.access.kind === 'public' ? [] : [{ bearer: [] }, { session: [] }],
        requestBody: body ? { required: true, content: { 'application/json': { schema: body } } } : undefined,
        responses: { default: { description: 'JSON; errors are {"error": {"code", "message", "details"}}' } },
        'x-access': r.access,
      };
    }
    return {
      openapi: '3.1.0',
      info: { title: 'Gatehouse admin API', version: '1' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE },
        },
      },
      paths,
    };
  }
}
