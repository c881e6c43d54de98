/**
 * @module control/compile
 * From stored entities to declarative configs: a tenant's own view (its ids as written, to validate a draft
 * with every rule the gateway applies), and the one config every gateway runs, made of all tenants' live
 * entities. In that config the ids of routes, services, upstreams and certificates are prefixed with the
 * tenant ("acme.orders"), and so are the references to them, including those inside plugin configs (traffic
 * split targets...). Consumer user names are not prefixed (upstreams get them in X-Consumer-Username), so they
 * are unique across tenants. A tenant's global plugins apply to the tenant's routes, below route and service
 * plugins of the same name.
 */
import type { DeclarativeConfig } from '../model/declarative.js';
import { validateDeclarative, type ConfigProblem, type PluginValidator } from '../model/validate.js';
import type { EntityKind } from '../store/types.js';

export interface StoredEntity {
  tenant: string;
  kind: EntityKind;
  id: string;
  content: Record<string, unknown>;
}

/** Where each entity sits in a compiled config, to map problems back to it. */
export interface Placement {
  /** "routes[3]" or "globalPlugins.cors". */
  at: string;
  tenant: string;
  kind: EntityKind;
  id: string;
}

export interface Compiled {
  config: Record<string, unknown>;
  placements: Placement[];
}

const ARRAY_KINDS: Record<Exclude<EntityKind, 'global-plugins'>, keyof DeclarativeConfig> = {
  routes: 'routes',
  services: 'services',
  upstreams: 'upstreams',
  consumers: 'consumers',
  certificates: 'certificates',
};

/** The id field of an entity kind: consumers are named by `username`. */
export function idField(kind: EntityKind): string {
  return kind === 'consumers' ? 'username' : 'id';
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Set a value at a relative path such as "rules[0].upstreams[1].upstreamId". */
function setAt(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.match(/[^.[\]]+/g) ?? [];
  let cur: Record<string, unknown> | unknown[] = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const k = parts[i]!;
    cur = (Array.isArray(cur) ? cur[Number(k)] : cur[k]) as Record<string, unknown> | unknown[];
    if (cur === null || typeof cur !== 'object') return;
  }
  const last = parts[parts.length - 1]!;
  if (Array.isArray(cur)) cur[Number(last)] = value;
  else cur[last] = value;
}

/** One tenant's entities as a declarative config with its own ids (nothing prefixed). */
export function compileTenant(entities: StoredEntity[]): Compiled {
  const config: Record<string, unknown[] | Record<string, unknown>> = { routes: [], services: [], upstreams: [], consumers: [], certificates: [], globalPlugins: {} };
  const placements: Placement[] = [];
  for (const e of entities) {
    if (e.kind === 'global-plugins') {
      (config.globalPlugins as Record<string, unknown>)[e.id] = clone(e.content);
      placements.push({ at: `globalPlugins.${e.id}`, tenant: e.tenant, kind: e.kind, id: e.id });
      continue;
    }
    const list = config[ARRAY_KINDS[e.kind]] as unknown[];
    placements.push({ at: `${ARRAY_KINDS[e.kind]}[${list.length}]`, tenant: e.tenant, kind: e.kind, id: e.id });
    list.push({ ...clone(e.content), [idField(e.kind)]: e.id });
  }
  return { config, placements };
}

/** The config every gateway runs: all tenants' live entities, ids prefixed by tenant. */
export function compileLive(entities: StoredEntity[], plugins: PluginValidator): Compiled {
  const p = (tenant: string, id: string) => `${tenant}.${id}`;
  const out: Compiled = { config: { routes: [], services: [], upstreams: [], consumers: [], certificates: [], globalPlugins: {} }, placements: [] };
  const tenantGlobals = new Map<string, Record<string, unknown>>();
  const servicePlugins = new Map<string, Record<string, unknown>>();
  for (const e of entities) {
    if (e.kind === 'global-plugins') {
      let g = tenantGlobals.get(e.tenant);
      if (!g) tenantGlobals.set(e.tenant, (g = {}));
      g[e.id] = clone(e.content);
    }
    if (e.kind === 'services') servicePlugins.set(p(e.tenant, e.id), (e.content.plugins as Record<string, unknown> | undefined) ?? {});
  }
  const prefixPluginRefs = (tenant: string, pluginsOf: Record<string, unknown> | undefined) => {
    for (const [name, config] of Object.entries(pluginsOf ?? {})) {
      for (const [rel, id] of plugins.upstreamReferences?.(name, config) ?? []) setAt(config as Record<string, unknown>, rel, p(tenant, id));
    }
  };
  for (const e of entities) {
    if (e.kind === 'global-plugins') continue;
    const c = { ...clone(e.content) } as Record<string, unknown>;
    const t = e.tenant;
    switch (e.kind) {
      case 'routes': {
        c.id = p(t, e.id);
        if (typeof c.upstreamId === 'string') c.upstreamId = p(t, c.upstreamId);
        if (typeof c.serviceId === 'string') c.serviceId = p(t, c.serviceId);
        prefixPluginRefs(t, c.plugins as Record<string, unknown> | undefined);
        // The tenant's global plugins, where neither the route nor its service configures the same plugin.
        const globals = tenantGlobals.get(t);
        if (globals) {
          const own = (c.plugins as Record<string, unknown> | undefined) ?? {};
          const svc = typeof c.serviceId === 'string' ? (servicePlugins.get(c.serviceId) ?? {}) : {};
          const merged: Record<string, unknown> = {};
          for (const [name, config] of Object.entries(globals)) if (!(name in own) && !(name in svc)) merged[name] = clone(config);
          prefixPluginRefs(t, merged);
          if (Object.keys(merged).length) c.plugins = { ...merged, ...own };
        }
        break;
      }
      case 'services':
        c.id = p(t, e.id);
        if (typeof c.upstreamId === 'string') c.upstreamId = p(t, c.upstreamId);
        prefixPluginRefs(t, c.plugins as Record<string, unknown> | undefined);
        break;
      case 'upstreams':
      case 'certificates':
        c.id = p(t, e.id);
        break;
      case 'consumers':
        c.username = e.id;
        prefixPluginRefs(t, c.plugins as Record<string, unknown> | undefined);
        break;
    }
    const list = out.config[ARRAY_KINDS[e.kind]] as unknown[];
    out.placements.push({ at: `${ARRAY_KINDS[e.kind]}[${list.length}]`, tenant: t, kind: e.kind, id: e.id });
    list.push(c);
  }
  return out;
}

export interface EntityProblem {
  tenant: string;
  kind: EntityKind;
  id: string;
  /** Field path within the entity ("paths[0]"), or "" for the entity itself. */
  path: string;
  message: string;
}

/** Validate a compiled config and say which entity each problem belongs to. */
export function validateCompiled(c: Compiled, plugins: PluginValidator): { ok: true; value: DeclarativeConfig } | { ok: false; problems: EntityProblem[]; other: ConfigProblem[] } {
  const r = validateDeclarative(c.config, plugins);
  if (r.ok) return r;
  const problems: EntityProblem[] = [];
  const other: ConfigProblem[] = [];
  // Longest placement first, so "routes[1]" never claims "routes[12]"'s problems.
  const sorted = [...c.placements].sort((a, b) => b.at.length - a.at.length);
  for (const pr of r.problems) {
    const pl = sorted.find((x) => pr.path === x.at || pr.path.startsWith(`${x.at}.`) || pr.path.startsWith(`${x.at}[`));
    if (!pl) {
      other.push(pr);
      continue;
    }
    const rest = pr.path.slice(pl.at.length).replace(/^\./, '');
    problems.push({ tenant: pl.tenant, kind: pl.kind, id: pl.id, path: rest, message: pr.message });
  }
  return { ok: false, problems, other };
}

/** A gray release as the gateways see it: a route's content for chosen instances. */
export interface GrayOverride {
  tenant: string;
  routeId: string;
  version: number;
  instances: string[];
  content: Record<string, unknown>;
}

/**
 * The entities an instance runs: the live ones, with each route under a gray release that names `instance`
 * replaced by (or, for a route not live yet, joined by) the gray content. With instance null every gray release
 * applies (to check that each instance's config would be valid). Also returns the gray versions applied.
 */
export function applyGray(entities: StoredEntity[], gray: GrayOverride[], instance: string | null): { entities: StoredEntity[]; served: Array<{ tenant: string; routeId: string; version: number }> } {
  const mine = gray.filter((g) => instance === null || g.instances.includes(instance));
  if (mine.length === 0) return { entities, served: [] };
  const byKey = new Map(mine.map((g) => [`${g.tenant}/${g.routeId}`, g]));
  const out: StoredEntity[] = [];
  for (const e of entities) {
    const g = e.kind === 'routes' ? byKey.get(`${e.tenant}/${e.id}`) : undefined;
    if (g) {
      out.push({ tenant: e.tenant, kind: 'routes', id: e.id, content: g.content });
      byKey.delete(`${e.tenant}/${e.id}`);
    } else out.push(e);
  }
  for (const g of byKey.values()) out.push({ tenant: g.tenant, kind: 'routes', id: g.routeId, content: g.content });
  return { entities: out, served: mine.map((g) => ({ tenant: g.tenant, routeId: g.routeId, version: g.version })) };
}

export type InstanceConfig =
  | { ok: true; config: DeclarativeConfig; served: Array<{ tenant: string; routeId: string; version: number }>; grayRefused: ConfigProblem[] }
  | { ok: false; problems: ConfigProblem[] };

function asConfigProblems(r: { problems: EntityProblem[]; other: ConfigProblem[] }): ConfigProblem[] {
  return [...r.problems.map((p) => ({ path: `${p.tenant}/${p.kind}/${p.id}${p.path ? `.${p.path}` : ''}`, message: p.message })), ...r.other];
}

/**
 * The validated config one gateway instance runs: the live entities plus the gray releases naming it. Should
 * the gray releases make it invalid (the control plane checks against that, so only by a hand edit of etcd),
 * the instance runs the live config alone and the problems are returned in grayRefused.
 */
export function compileForInstance(entities: StoredEntity[], gray: GrayOverride[], instance: string | null, plugins: PluginValidator): InstanceConfig {
  const g = applyGray(entities, gray, instance);
  const r = validateCompiled(compileLive(g.entities, plugins), plugins);
  if (r.ok) return { ok: true, config: r.value, served: g.served, grayRefused: [] };
  if (g.served.length === 0) return { ok: false, problems: asConfigProblems(r) };
  const plain = validateCompiled(compileLive(entities, plugins), plugins);
  if (!plain.ok) return { ok: false, problems: asConfigProblems(plain) };
  return { ok: true, config: plain.value, served: [], grayRefused: asConfigProblems(r) };
}
