/**
 * @module control/release
 * Release controls of the admin API: how a change goes live.
 *
 * - Every publish (of a draft, a rollback, a gray release or its promotion) is a list of change items. Where the
 *   tenant requires review, the items become a change request that a reviewer other than its author approves
 *   (then they are applied) or rejects; its author can withdraw it. The roles the tenant names may take the
 *   skip-review lane (`skipReview: true`), and every such publish is audited as one.
 * - A change's items apply together or not at all (one store transaction, one etcd transaction), and only if
 *   each entity's live version is still the one the change was based on: otherwise 409 and the change must be
 *   rebased, so a second change never silently overwrites the first.
 * - Gray release puts a route version on chosen gateway instances only; stop returns them to the live version,
 *   promote makes it the live version everywhere.
 */
import { Type } from '@sinclair/typebox';
import type { PluginRegistry } from '../dataplane/plugins/registry.js';
import { CHANGE_STATUSES, ROLES, StoreConflict, type AuditInput, type ChangeItem, type ChangeRecord, type ChangeStatus, type EntityKind, type GrayRecord, type Role, type Store } from '../store/types.js';
import type { GrayOverride } from './compile.js';
import { redactEntity } from './redact.js';
import { ApiError, diff, pageParams, type ApiRoute, type Ctx, type Permission, type Principal } from './api.js';

/** One entity's next live state, for checking the whole live config before anything is applied. */
export interface LiveChange {
  kind: EntityKind;
  id: string;
  content: Record<string, unknown> | null;
}

/** What the release controls need of the control plane. */
export interface ReleaseHost {
  readonly store: Store;
  readonly plugins: PluginRegistry;
  audit(ctx: Ctx, a: Omit<AuditInput, 'actor' | 'source'>): AuditInput;
  permissions(p: Principal, tenant: string): Promise<ReadonlySet<Permission>>;
  /** The caller's role in the tenant as far as the skip-review lane goes (superadmins count as admin). */
  effectiveRole(p: Principal, tenant: string): Promise<Role | null>;
  /** 409 unless the config every gateway would run after these changes (and with these gray releases) is valid. */
  checkLive(tenant: string, changes: LiveChange[], refusal: string, gray?: { add?: GrayOverride[]; drop?: string[] }): Promise<void>;
  /** Tell the config sources (local gateway, etcd) what changed. */
  published(changes: Array<{ tenant: string; kind: EntityKind | 'gray'; id: string }>): Promise<void>;
  /** The registered gateway instances (id and the gray versions each serves). */
  instances(): Promise<Array<{ id: string; gray?: Array<{ tenant: string; routeId: string; version: number }> }>>;
}

const INSTANCE_ID = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';

export class ReleaseControls {
  constructor(private readonly host: ReleaseHost) {}

  private get store(): Store {
    return this.host.store;
  }

  private redact(kind: EntityKind, id: string, content: Record<string, unknown> | null): Record<string, unknown> | null {
    return redactEntity(kind, id, content, this.host.plugins);
  }

  /**
   * How a publish by this caller goes: directly (the tenant does not require review), by the skip-review lane
   * (asked for, and the caller's role is one the tenant allows), or to review.
   */
  async lane(ctx: Ctx, tenant: string, skipReview: boolean | undefined): Promise<'direct' | 'skip-review' | 'review'> {
    const t = await this.store.getTenant(tenant);
    if (!t) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no tenant "${tenant}"`);
    if (!t.reviewRequired) return 'direct';
    if (!skipReview) return 'review';
    const role = await this.host.effectiveRole(ctx.principal!, tenant);
    if (role !== null && t.skipReviewRoles.includes(role)) return 'skip-review';
    throw new ApiError(
      'GH_ERR_ACCESS_DENIED',
      `the skip-review lane of tenant "${tenant}" is for ${t.skipReviewRoles.length ? t.skipReviewRoles.join(', ') : 'no role'}; publish without skipReview to ask for a review`,
    );
  }

  /** The live-config changes a list of items amounts to, and the gray releases they start or end. */
  private async effects(tenant: string, items: ChangeItem[]): Promise<{ changes: LiveChange[]; gray: { add: GrayOverride[]; drop: string[] } }> {
    const changes: LiveChange[] = [];
    const gray = { add: [] as GrayOverride[], drop: [] as string[] };
    for (const it of items) {
      if (it.op === 'publish') changes.push({ kind: it.kind, id: it.id, content: it.content });
      else if (it.op === 'gray') gray.add.push({ tenant, routeId: it.id, version: it.version ?? 0, instances: it.instances, content: it.content });
      else {
        const g = await this.grayOf(tenant, it.id);
        if (!g) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `route "${it.id}" has no active gray release`);
        changes.push({ kind: 'routes', id: it.id, content: g.content });
        gray.drop.push(it.id);
      }
    }
    return { changes, gray };
  }

  /** The active gray release of a route, if any. */
  private async grayOf(tenant: string, routeId: string): Promise<GrayRecord | undefined> {
    return (await this.store.listGray(tenant)).find((g) => g.routeId === routeId);
  }

  private async check(tenant: string, items: ChangeItem[], refusal: string): Promise<void> {
    const { changes, gray } = await this.effects(tenant, items);
    await this.host.checkLive(tenant, changes, refusal, gray);
  }

  private action(it: ChangeItem): string {
    if (it.op === 'gray') return 'routes.gray.start';
    if (it.op === 'promote') return 'routes.gray.promote';
    return it.note?.startsWith('rollback to version ') ? `${it.kind}.rollback` : `${it.kind}.publish`;
  }

  /** Apply items now (directly, by the skip-review lane, or by approving change `changeId`). */
  private async apply(ctx: Ctx, tenant: string, items: ChangeItem[], o: { lane: 'direct' | 'skip-review' | 'review'; author: string; changeId?: number; comment?: string; note?: string }) {
    const actor = ctx.principal!.user.username;
    const audits: AuditInput[] = [];
    for (const it of items) {
      const current = await this.store.getEntity(tenant, it.kind, it.id);
      const after = it.op === 'promote' ? null : it.content;
      audits.push(
        this.host.audit(ctx, {
          tenant,
          kind: it.kind,
          entityId: it.id,
          action: `${this.action(it)}${o.lane === 'skip-review' ? '.skip-review' : ''}`,
          before: this.redact(it.kind, it.id, current?.live ?? null),
          after: it.op === 'promote' ? { promotedGrayVersion: it.grayVersion } : it.op === 'gray' ? { instances: it.instances, content: this.redact('routes', it.id, after) } : this.redact(it.kind, it.id, after),
        }),
      );
    }
    if (o.changeId !== undefined) audits.push(this.host.audit(ctx, { tenant, kind: 'change', entityId: String(o.changeId), action: 'change.approve', before: null, after: { comment: o.comment ?? null } }));
    const out = await this.store.apply(tenant, items, {
      actor,
      author: o.author,
      reviewer: o.changeId !== undefined ? actor : undefined,
      changeId: o.changeId,
      comment: o.comment,
      note: o.note,
      audits,
    });
    const touched: Array<{ tenant: string; kind: EntityKind | 'gray'; id: string }> = [];
    for (const it of items) {
      if (it.op !== 'gray') touched.push({ tenant, kind: it.kind, id: it.id });
      if (it.op !== 'publish') touched.push({ tenant, kind: 'gray', id: it.id });
    }
    await this.host.published(touched);
    return out;
  }

  /**
   * Publish items by the tenant's policy: apply them now (200/201) or submit them as a change for review (202).
   * Either way the whole live config must stay valid with them.
   */
  async release(
    ctx: Ctx,
    tenant: string,
    items: ChangeItem[],
    o: { skipReview?: boolean; title: string; description?: string; note?: string; refusal: string },
  ): Promise<{ applied: true; versions: Array<{ kind: EntityKind; id: string; version: number }> } | { applied: false; change: unknown }> {
    const lane = await this.lane(ctx, tenant, o.skipReview);
    await this.check(tenant, items, o.refusal);
    const author = ctx.principal!.user.username;
    if (lane === 'review') {
      const change = await this.store.createChange(
        { tenant, title: o.title, description: o.description ?? null, author, items },
        this.host.audit(ctx, { tenant, kind: 'change', entityId: null, action: 'change.submit', before: null, after: { title: o.title, items: items.map((i) => ({ op: i.op, kind: i.kind, id: i.id })) } }),
      );
      ctx.reply.status(202);
      return { applied: false, change: await this.changeView(change, true) };
    }
    const out = await this.apply(ctx, tenant, items, { lane, author, note: o.note });
    return { applied: true, versions: out.versions.map((v) => ({ kind: v.kind, id: v.id, version: v.version })) };
  }

  // ---- views

  private async changeView(c: ChangeRecord, detailed: boolean) {
    const items = [];
    for (const it of c.items) {
      const base = { op: it.op, kind: it.kind, id: it.id, baseVersion: it.baseVersion };
      let content: Record<string, unknown> | null;
      const extra: Record<string, unknown> = {};
      if (it.op === 'promote') {
        const g = (await this.store.listGray(c.tenant)).find((x) => x.routeId === it.id && x.version === it.grayVersion);
        content = g?.content ?? (await this.store.getVersion(c.tenant, 'routes', it.id, it.grayVersion))?.content ?? null;
        extra.grayVersion = it.grayVersion;
      } else {
        content = it.content;
        if (it.op === 'gray') Object.assign(extra, { instances: it.instances, version: it.version });
        if (it.note) extra.note = it.note;
      }
      const shown = this.redact(it.kind, it.id, content);
      if (!detailed) {
        items.push({ ...base, ...extra });
        continue;
      }
      const e = await this.store.getEntity(c.tenant, it.kind, it.id);
      const live = this.redact(it.kind, it.id, e?.live ?? null);
      items.push({ ...base, ...extra, content: shown, live, liveVersion: e?.liveVersion ?? 0, changes: diff(live, shown) });
    }
    return {
      id: c.id,
      tenant: c.tenant,
      title: c.title,
      description: c.description,
      status: c.status,
      author: c.author,
      createdAt: c.createdAt,
      updatedAt: c.updatedAt,
      decidedBy: c.decidedBy,
      decidedAt: c.decidedAt,
      comment: c.comment,
      items,
      versions: c.versions,
    };
  }

  private async grayView(g: GrayRecord, instances: Awaited<ReturnType<ReleaseHost['instances']>> | null) {
    const byId = new Map((instances ?? []).map((i) => [i.id, i]));
    return {
      routeId: g.routeId,
      version: g.version,
      baseVersion: g.baseVersion,
      instances: g.instances.map((id) => {
        if (instances === null) return { id, state: 'unknown' };
        const i = byId.get(id);
        if (!i) return { id, state: 'gone' };
        const serving = (i.gray ?? []).some((x) => x.tenant === g.tenant && x.routeId === g.routeId && x.version === g.version);
        return { id, state: serving ? 'serving' : 'pending' };
      }),
      createdBy: g.createdBy,
      createdAt: g.createdAt,
      changeId: g.changeId,
    };
  }

  private async instancesOrNull() {
    try {
      return await this.host.instances();
    } catch {
      return null;
    }
  }

  private async openChange(tenant: string, raw: string | undefined): Promise<ChangeRecord> {
    const id = Number(raw);
    const c = Number.isInteger(id) && id > 0 ? await this.store.getChange(tenant, id) : null;
    if (!c) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no change ${raw}`);
    if (c.status !== 'open') throw new ApiError('GH_ERR_ADMIN_CONFLICT', `change ${c.id} is ${c.status}`);
    return c;
  }

  /** The author of a change, or a tenant admin, may withdraw or rebase it. */
  private async mayHandle(ctx: Ctx, c: ChangeRecord): Promise<void> {
    if (c.author === ctx.principal!.user.username) return;
    if ((await this.host.permissions(ctx.principal!, c.tenant)).has('manage')) return;
    throw new ApiError('GH_ERR_ACCESS_DENIED', `only the author of change ${c.id} (or a tenant admin) may do this`);
  }

  // ---- routes

  routes(): ApiRoute[] {
    const out: ApiRoute[] = [];
    const add = (r: ApiRoute) => out.push(r);
    const base = '/api/v1/tenants/:tenant/changes';

    add({
      method: 'GET',
      url: base,
      access: { kind: 'tenant', perm: 'read' },
      summary: 'Change requests, newest first: filter by status (open, approved, rejected, withdrawn) and author; paging with limit and offset.',
      handler: async (ctx) => {
        const { limit, offset } = pageParams(ctx.query);
        const status = ctx.query.status;
        if (status !== undefined && !(CHANGE_STATUSES as readonly string[]).includes(status)) {
          throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, [{ path: 'status', message: `must be one of ${CHANGE_STATUSES.join(', ')}` }]);
        }
        const r = await this.store.listChanges(ctx.params.tenant!, { status: status as ChangeStatus | undefined, author: ctx.query.author, limit, offset });
        const items = [];
        for (const c of r.items) items.push(await this.changeView(c, false));
        return { items, total: r.total, limit, offset };
      },
    });

    add({
      method: 'POST',
      url: base,
      access: { kind: 'tenant', perm: 'write' },
      summary: 'Submit the drafts of one or more entities as one change for review; approval publishes them all or none.',
      body: Type.Object(
        {
          title: Type.String({ minLength: 1, maxLength: 256 }),
          description: Type.Optional(Type.String({ maxLength: 8192 })),
          items: Type.Array(
            Type.Object({ kind: Type.Union((['routes', 'services', 'upstreams', 'consumers', 'certificates', 'global-plugins'] as const).map((k) => Type.Literal(k))), id: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false }),
            { minItems: 1, maxItems: 100 },
          ),
        },
        { additionalProperties: false },
      ),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const b = ctx.body as { title: string; description?: string; items: Array<{ kind: EntityKind; id: string }> };
        const items: ChangeItem[] = [];
        const problems: Array<{ path: string; message: string }> = [];
        for (const [i, ref] of b.items.entries()) {
          const e = await this.store.getEntity(tenant, ref.kind, ref.id);
          if (!e) problems.push({ path: `items[${i}]`, message: `no ${ref.kind} "${ref.id}"` });
          else if (!e.pending) problems.push({ path: `items[${i}]`, message: `${ref.kind} "${ref.id}" has no unpublished change` });
          else if (items.some((x) => x.kind === ref.kind && x.id === ref.id)) problems.push({ path: `items[${i}]`, message: 'appears twice' });
          else items.push({ op: 'publish', kind: ref.kind, id: ref.id, content: e.draft, baseVersion: e.liveVersion });
        }
        if (problems.length) throw new ApiError('GH_ERR_ADMIN_INVALID', undefined, problems);
        await this.check(tenant, items, 'publishing this change would make the live config invalid');
        const c = await this.store.createChange(
          { tenant, title: b.title, description: b.description ?? null, author: ctx.principal!.user.username, items },
          this.host.audit(ctx, { tenant, kind: 'change', entityId: null, action: 'change.submit', before: null, after: { title: b.title, items: b.items } }),
        );
        ctx.reply.status(201);
        return this.changeView(c, true);
      },
    });

    add({
      method: 'GET',
      url: `${base}/:id`,
      access: { kind: 'tenant', perm: 'read' },
      summary: 'One change: its items with their proposed content, the current live content and the differences (secrets redacted).',
      handler: async (ctx) => {
        const id = Number(ctx.params.id);
        const c = Number.isInteger(id) && id > 0 ? await this.store.getChange(ctx.params.tenant!, id) : null;
        if (!c) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no change ${ctx.params.id}`);
        return this.changeView(c, true);
      },
    });

    add({
      method: 'POST',
      url: `${base}/:id/approve`,
      access: { kind: 'tenant', perm: 'review' },
      summary: 'Approve an open change (not one\'s own): its items go live together, or 409 when one\'s live version moved on (rebase it).',
      body: Type.Object({ comment: Type.Optional(Type.String({ maxLength: 4096 })) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const c = await this.openChange(tenant, ctx.params.id);
        if (c.author === ctx.principal!.user.username) throw new ApiError('GH_ERR_ACCESS_DENIED', `you wrote change ${c.id}: another reviewer must approve it`);
        const comment = (ctx.body as { comment?: string }).comment;
        await this.check(tenant, c.items, `change ${c.id} no longer fits the live config`);
        try {
          const out = await this.apply(ctx, tenant, c.items, { lane: 'review', author: c.author, changeId: c.id, comment, note: c.title });
          return { change: await this.changeView(out.change!, true), versions: out.versions.map((v) => ({ kind: v.kind, id: v.id, version: v.version })) };
        } catch (e) {
          if (e instanceof StoreConflict && e.reason === 'base') throw new ApiError('GH_ERR_ADMIN_CONFLICT', e.message, e.details);
          throw e;
        }
      },
    });

    add({
      method: 'POST',
      url: `${base}/:id/reject`,
      access: { kind: 'tenant', perm: 'review' },
      summary: 'Reject an open change with a comment saying why; nothing goes live.',
      body: Type.Object({ comment: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const c = await this.openChange(tenant, ctx.params.id);
        const comment = (ctx.body as { comment: string }).comment;
        const out = await this.store.closeChange(tenant, c.id, { status: 'rejected', actor: ctx.principal!.user.username, comment }, this.host.audit(ctx, { tenant, kind: 'change', entityId: String(c.id), action: 'change.reject', before: null, after: { comment } }));
        return this.changeView(out, true);
      },
    });

    add({
      method: 'POST',
      url: `${base}/:id/withdraw`,
      access: { kind: 'tenant', perm: 'write' },
      summary: 'Withdraw an open change (its author, or a tenant admin); the drafts stay as they are.',
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const c = await this.openChange(tenant, ctx.params.id);
        await this.mayHandle(ctx, c);
        const out = await this.store.closeChange(tenant, c.id, { status: 'withdrawn', actor: ctx.principal!.user.username, comment: null }, this.host.audit(ctx, { tenant, kind: 'change', entityId: String(c.id), action: 'change.withdraw', before: null, after: null }));
        return this.changeView(out, true);
      },
    });

    add({
      method: 'POST',
      url: `${base}/:id/rebase`,
      access: { kind: 'tenant', perm: 'write' },
      summary: 'Base an open change on the current live versions (after a 409 on approval), keeping its content; a reviewer sees the new differences.',
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const c = await this.openChange(tenant, ctx.params.id);
        await this.mayHandle(ctx, c);
        const items: ChangeItem[] = [];
        for (const it of c.items) {
          const e = await this.store.getEntity(tenant, it.kind, it.id);
          if (it.op === 'promote') {
            const g = await this.grayOf(tenant, it.id);
            if (!g || g.version !== it.grayVersion) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `route "${it.id}" no longer has gray version ${it.grayVersion} active: withdraw this change`);
            if ((e?.liveVersion ?? 0) !== g.baseVersion) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `route "${it.id}" went live again since its gray release started: stop the gray release and start a new one`);
            items.push(it);
          } else items.push({ ...it, baseVersion: e?.liveVersion ?? 0 });
        }
        await this.check(tenant, items, `change ${c.id} does not fit the live config`);
        const out = await this.store.updateChangeItems(tenant, c.id, items, this.host.audit(ctx, { tenant, kind: 'change', entityId: String(c.id), action: 'change.rebase', before: c.items.map((i) => ({ kind: i.kind, id: i.id, baseVersion: i.baseVersion })), after: items.map((i) => ({ kind: i.kind, id: i.id, baseVersion: i.baseVersion })) }));
        return this.changeView(out, true);
      },
    });

    // ---- gray release (INTERFACE.md paths)
    const gray = '/admin/services/gray/:tenant/routes';
    add({
      method: 'GET',
      url: gray,
      access: { kind: 'tenant', perm: 'read' },
      summary: 'Active gray releases of the tenant\'s routes: the version, the instances named and whether each serves it (serving, pending, gone).',
      handler: async (ctx) => {
        const instances = await this.instancesOrNull();
        const items = [];
        for (const g of await this.store.listGray(ctx.params.tenant!)) items.push(await this.grayView(g, instances));
        return { items };
      },
    });
    add({
      method: 'POST',
      url: gray,
      access: { kind: 'tenant', perm: 'publish' },
      summary: 'Put a route version (a published version number, or "draft") on the named gateway instances only; by the tenant\'s review policy (202 with the change when it needs review).',
      body: Type.Object(
        {
          routeId: Type.String({ minLength: 1, maxLength: 128 }),
          instances: Type.Array(Type.String({ pattern: INSTANCE_ID }), { minItems: 1, maxItems: 1000, uniqueItems: true }),
          version: Type.Union([Type.Integer({ minimum: 1 }), Type.Literal('draft')]),
          skipReview: Type.Optional(Type.Boolean()),
          note: Type.Optional(Type.String({ maxLength: 1024 })),
        },
        { additionalProperties: false },
      ),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const b = ctx.body as { routeId: string; instances: string[]; version: number | 'draft'; skipReview?: boolean; note?: string };
        const e = await this.store.getEntity(tenant, 'routes', b.routeId);
        let content: Record<string, unknown> | null;
        if (b.version === 'draft') {
          if (!e) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `no route "${b.routeId}"`);
          if (!e.pending || e.draft === null) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `route "${b.routeId}" has no unpublished draft to release`);
          content = e.draft;
        } else {
          const v = await this.store.getVersion(tenant, 'routes', b.routeId, b.version);
          if (!v) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `route "${b.routeId}" has no version ${b.version}`);
          if (v.content === null) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `version ${b.version} is the route's deletion`);
          if (e && e.liveVersion === b.version) throw new ApiError('GH_ERR_ADMIN_CONFLICT', `version ${b.version} is the live version already`);
          content = v.content;
        }
        if (await this.grayOf(tenant, b.routeId)) {
          throw new ApiError('GH_ERR_ADMIN_CONFLICT', `route "${b.routeId}" already has an active gray release: stop or promote it first`);
        }
        const item: ChangeItem = { op: 'gray', kind: 'routes', id: b.routeId, content, baseVersion: e?.liveVersion ?? 0, instances: b.instances, version: b.version === 'draft' ? null : b.version, note: b.note };
        const out = await this.release(ctx, tenant, [item], {
          skipReview: b.skipReview,
          title: `Gray release of route ${b.routeId} to ${b.instances.join(', ')}`,
          note: b.note,
          refusal: 'this gray release would make the config of its instances invalid',
        });
        if (!out.applied) return { change: out.change };
        const g = (await this.grayOf(tenant, b.routeId))!;
        ctx.reply.status(201);
        return this.grayView(g, await this.instancesOrNull());
      },
    });
    add({
      method: 'DELETE',
      url: `${gray}/:routeId`,
      access: { kind: 'tenant', perm: 'publish' },
      summary: 'Stop a gray release: its instances serve the live version again (no review needed: it returns to what was approved).',
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const routeId = ctx.params.routeId!;
        const g = await this.grayOf(tenant, routeId);
        if (!g) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `route "${routeId}" has no active gray release`);
        const done = await this.store.deleteGray(tenant, routeId, this.host.audit(ctx, { tenant, kind: 'routes', entityId: routeId, action: 'routes.gray.stop', before: { version: g.version, instances: g.instances }, after: null }));
        if (!done) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `route "${routeId}" has no active gray release`);
        await this.host.published([{ tenant, kind: 'gray', id: routeId }]);
        return { stopped: true, routeId, version: g.version };
      },
    });
    add({
      method: 'POST',
      url: `${gray}/:routeId/promote`,
      access: { kind: 'tenant', perm: 'publish' },
      summary: 'Make the gray version the live version on every instance; by the tenant\'s review policy. Refused (409) when the route went live again since the gray release started.',
      body: Type.Object({ skipReview: Type.Optional(Type.Boolean()), note: Type.Optional(Type.String({ maxLength: 1024 })) }, { additionalProperties: false }),
      handler: async (ctx) => {
        const tenant = ctx.params.tenant!;
        const routeId = ctx.params.routeId!;
        const b = ctx.body as { skipReview?: boolean; note?: string };
        const g = await this.grayOf(tenant, routeId);
        if (!g) throw new ApiError('GH_ERR_ADMIN_NOT_FOUND', `route "${routeId}" has no active gray release`);
        const e = await this.store.getEntity(tenant, 'routes', routeId);
        if ((e?.liveVersion ?? 0) !== g.baseVersion) {
          throw new ApiError('GH_ERR_ADMIN_CONFLICT', `route "${routeId}" went live as version ${e?.liveVersion ?? 0} after this gray release started from version ${g.baseVersion}: stop it and start a new one`, [
            { kind: 'routes', id: routeId, baseVersion: g.baseVersion, currentVersion: e?.liveVersion ?? 0 },
          ]);
        }
        const item: ChangeItem = { op: 'promote', kind: 'routes', id: routeId, grayVersion: g.version, baseVersion: g.baseVersion };
        const out = await this.release(ctx, tenant, [item], { skipReview: b.skipReview, title: `Promote gray version ${g.version} of route ${routeId}`, note: b.note, refusal: 'promoting this gray release would make the live config invalid' });
        if (!out.applied) return { change: out.change };
        return { promoted: true, routeId, grayVersion: g.version, version: out.versions[0]?.version };
      },
    });
    return out;
  }
}

/** Roles from most to least powerful: a token narrowed to a role gets the lower of its role and the user's. */
export function lowerRole(a: Role, b: Role): Role {
  return ROLES.indexOf(a) >= ROLES.indexOf(b) ? a : b;
}

