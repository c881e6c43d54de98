/**
 * @module model/validate
 * Validates a declarative config: JSON Schema first (ajv, defaults filled in), then the cross-entity rules
 * (unique ids, references, regexes, certificates). Every problem names the field path.
 */
import { createSecureContext } from 'node:tls';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import { DeclarativeConfig } from './declarative.js';
import type { UpstreamBody, UpstreamDiscovery } from './upstream.js';

/** One problem with a config, located by its field path ("routes[2].paths[0]"). */
export interface ConfigProblem {
  path: string;
  message: string;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; problems: ConfigProblem[] };

const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);

const compiled = new WeakMap<TSchema, ValidateFunction>();

function compile(schema: TSchema): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

/** "/routes/2/paths/0" -> "routes[2].paths[0]" */
export function pointerToPath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else out += out ? `.${part}` : part;
  }
  return out || '(root)';
}

function describe(err: ErrorObject): ConfigProblem {
  let path = pointerToPath(err.instancePath);
  let message = err.message ?? 'is invalid';
  switch (err.keyword) {
    case 'additionalProperties': {
      const extra = (err.params as { additionalProperty: string }).additionalProperty;
      path = pointerToPath(`${err.instancePath}/${extra.replace(/~/g, '~0').replace(/\//g, '~1')}`);
      message = 'is not a known field';
      break;
    }
    case 'required': {
      const missing = (err.params as { missingProperty: string }).missingProperty;
      path = pointerToPath(`${err.instancePath}/${missing}`);
      message = 'is required';
      break;
    }
    case 'enum':
      message = `must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    default:
      break;
  }
  return { path, message };
}

/** Validate `data` against a schema, filling in defaults in place; problem paths get `prefix`. */
export function validateSchema<T>(schema: TSchema, data: unknown, prefix = ''): ValidationResult<T> {
  const fn = compile(schema);
  if (fn(data)) return { ok: true, value: data as T };
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const err of fn.errors ?? []) {
    const p = describe(err);
    if (prefix) p.path = p.path === '(root)' ? prefix : `${prefix}.${p.path}`;
    const key = `${p.path}\0${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(p);
    }
  }
  return { ok: false, problems };
}

/**
 * A plugin registry as seen by validation: the names it knows and a validator per plugin.
 * The plugin framework provides the real one; with none, any plugin named is refused.
 */
export interface PluginValidator {
  has(name: string): boolean;
  validate(name: string, config: unknown, path: string, level: 'route' | 'service' | 'global' | 'consumer' | 'credential'): ConfigProblem[];
  /** For auth plugins: the credential value that must be unique across consumers, if any. */
  credentialKey?(name: string, credential: unknown): string | undefined;
  /** The upstream ids a valid plugin config names, as [path relative to the plugin's config, id]. */
  upstreamReferences?(name: string, config: unknown): Array<[string, string]>;
}

const noPlugins: PluginValidator = {
  has: () => false,
  validate: () => [],
};

function checkUpstreamBody(u: UpstreamBody, path: string, problems: ConfigProblem[]): void {
  if (u.passHost === 'rewrite' && !u.upstreamHost) problems.push({ path: `${path}.upstreamHost`, message: 'is required when passHost is rewrite' });
  if (u.type === 'chash') {
    const on = u.hashOn ?? { type: 'ip' };
    if ((on.type === 'header' || on.type === 'cookie' || on.type === 'query') && !on.key) {
      problems.push({ path: `${path}.hashOn.key`, message: `is required when hashOn.type is ${on.type}` });
    }
  }
  const seen = new Set<string>();
  u.nodes.forEach((n, i) => {
    const k = `${n.host.toLowerCase()}:${n.port}`;
    if (seen.has(k)) problems.push({ path: `${path}.nodes[${i}]`, message: `duplicates node ${k}` });
    seen.add(k);
  });
  if (u.discovery) checkDiscovery(u.discovery, `${path}.discovery`, problems);
  else if (u.nodes.length === 0) problems.push({ path: `${path}.nodes`, message: 'is required: give at least one node, or a discovery source' });
  else if (u.nodes.every((n) => n.weight === 0)) problems.push({ path: `${path}.nodes`, message: 'needs at least one node with a weight above 0' });
}

/** A DNS name: labels of letters, digits, "-" and "_" (SRV names), dot-separated, an optional final dot. */
const DNS_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** The discovery field's rules per source type (which fields a type uses, what its service names look like). */
function checkDiscovery(d: UpstreamDiscovery, path: string, problems: ConfigProblem[]): void {
  const onlyFor = (field: 'cluster' | 'tags' | 'port', types: string) => problems.push({ path: `${path}.${field}`, message: `is only used with type ${types}` });
  switch (d.type) {
    case 'dns':
      if (!DNS_NAME.test(d.service)) problems.push({ path: `${path}.service`, message: 'must be a DNS name (letters, digits, "-" and "_" in dot-separated labels)' });
      if (d.cluster !== undefined) onlyFor('cluster', 'consul or consul-kv');
      if (d.tags !== undefined) onlyFor('tags', 'consul or etcd');
      break;
    case 'etcd':
      if (d.service.includes('/') || d.service === '.' || d.service === '..' || /\s/.test(d.service)) {
        problems.push({ path: `${path}.service`, message: 'must be one key segment: no "/", no whitespace, not "." or ".."' });
      }
      if (d.cluster !== undefined) onlyFor('cluster', 'consul or consul-kv');
      if (d.port !== undefined) onlyFor('port', 'dns');
      break;
    default:
      break;
  }
}

function checkPlugins(
  plugins: Record<string, unknown> | undefined,
  path: string,
  level: Parameters<PluginValidator['validate']>[3],
  registry: PluginValidator,
  problems: ConfigProblem[],
  upstreamIds?: ReadonlySet<string>,
): void {
  if (!plugins) return;
  for (const [name, conf] of Object.entries(plugins)) {
    const p = `${path}.${name}`;
    if (!registry.has(name)) {
      problems.push({ path: p, message: `unknown plugin "${name}"` });
      continue;
    }
    const own = registry.validate(name, conf, p, level);
    problems.push(...own);
    // A plugin that sends requests to a named upstream (traffic-split) cannot see the other upstreams itself.
    if (own.length > 0 || upstreamIds === undefined || !registry.upstreamReferences) continue;
    for (const [rel, id] of registry.upstreamReferences(name, conf)) {
      if (!upstreamIds.has(id)) problems.push({ path: rel ? `${p}.${rel}` : p, message: `names upstream "${id}", which does not exist` });
    }
  }
}

function dupes<T>(items: T[], key: (t: T) => string, path: string, field: string, problems: ConfigProblem[]): Set<string> {
  const seen = new Set<string>();
  items.forEach((it, i) => {
    const k = key(it);
    if (seen.has(k)) problems.push({ path: `${path}[${i}].${field}`, message: `duplicates ${field} "${k}"` });
    seen.add(k);
  });
  return seen;
}

/** Cross-entity rules over an already schema-valid config. */
export function checkSemantics(cfg: DeclarativeConfig, registry: PluginValidator = noPlugins): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const upstreamIds = dupes(cfg.upstreams, (u) => u.id, 'upstreams', 'id', problems);
  const serviceIds = dupes(cfg.services, (s) => s.id, 'services', 'id', problems);
  dupes(cfg.routes, (r) => r.id, 'routes', 'id', problems);
  dupes(cfg.consumers, (c) => c.username, 'consumers', 'username', problems);
  dupes(cfg.certificates, (c) => c.id, 'certificates', 'id', problems);

  cfg.upstreams.forEach((u, i) => checkUpstreamBody(u, `upstreams[${i}]`, problems));

  const serviceHasUpstream = new Map<string, boolean>();
  cfg.services.forEach((s, i) => {
    const path = `services[${i}]`;
    if (s.upstreamId && s.upstream) problems.push({ path: `${path}.upstream`, message: 'cannot be given together with upstreamId' });
    if (s.upstreamId && !upstreamIds.has(s.upstreamId)) problems.push({ path: `${path}.upstreamId`, message: `names upstream "${s.upstreamId}", which does not exist` });
    if (s.upstream) checkUpstreamBody(s.upstream, `${path}.upstream`, problems);
    serviceHasUpstream.set(s.id, Boolean(s.upstreamId || s.upstream));
    checkPlugins(s.plugins, `${path}.plugins`, 'service', registry, problems, upstreamIds);
  });

  cfg.routes.forEach((r, i) => {
    const path = `routes[${i}]`;
    const sources = [r.upstreamId && 'upstreamId', r.upstream && 'upstream'].filter(Boolean);
    if (sources.length > 1) problems.push({ path: `${path}.upstream`, message: 'cannot be given together with upstreamId' });
    if (r.upstreamId && !upstreamIds.has(r.upstreamId)) problems.push({ path: `${path}.upstreamId`, message: `names upstream "${r.upstreamId}", which does not exist` });
    if (r.serviceId && !serviceIds.has(r.serviceId)) problems.push({ path: `${path}.serviceId`, message: `names service "${r.serviceId}", which does not exist` });
    if (!r.upstreamId && !r.upstream && !(r.serviceId && serviceHasUpstream.get(r.serviceId))) {
      problems.push({ path: `${path}.upstreamId`, message: 'is required: a route needs upstreamId, an inline upstream, or a service with an upstream' });
    }
    if (r.upstream) checkUpstreamBody(r.upstream, `${path}.upstream`, problems);
    r.paths.forEach((p, j) => {
      const star = p.indexOf('*');
      if (star !== -1 && (star !== p.length - 1 || p[star - 1] !== '/')) {
        problems.push({ path: `${path}.paths[${j}]`, message: 'may only end in "/*" (a prefix match); "*" is not allowed elsewhere' });
      }
      for (const seg of p.split('/')) {
        if (seg.startsWith(':') && !/^:[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) {
          problems.push({ path: `${path}.paths[${j}]`, message: `has an invalid parameter segment "${seg}" (":name", letters, digits and _)` });
        }
        if (seg === '.' || seg === '..') problems.push({ path: `${path}.paths[${j}]`, message: 'must not contain "." or ".." segments' });
      }
    });
    (r.match ?? []).forEach((m, j) => {
      const mp = `${path}.match[${j}]`;
      if ((m.op === 'equals' || m.op === 'notEquals' || m.op === 'regex') && m.value === undefined) problems.push({ path: `${mp}.value`, message: `is required for op ${m.op}` });
      if ((m.op === 'in' || m.op === 'notIn') && !m.values) problems.push({ path: `${mp}.values`, message: `is required for op ${m.op}` });
      if (m.op === 'regex' && m.value !== undefined) {
        try {
          new RegExp(m.value);
        } catch (e) {
          problems.push({ path: `${mp}.value`, message: `is not a valid regular expression: ${(e as Error).message}` });
        }
      }
    });
    checkPlugins(r.plugins, `${path}.plugins`, 'route', registry, problems, upstreamIds);
  });

  const credentialOwners = new Map<string, string>();
  cfg.consumers.forEach((c, i) => {
    checkPlugins(c.credentials, `consumers[${i}].credentials`, 'credential', registry, problems);
    // Two consumers with one key would make authentication ambiguous.
    for (const [name, cred] of Object.entries(c.credentials ?? {})) {
      const key = registry.has(name) ? registry.credentialKey?.(name, cred) : undefined;
      if (key === undefined) continue;
      const id = `${name}\0${key}`;
      const owner = credentialOwners.get(id);
      if (owner !== undefined) problems.push({ path: `consumers[${i}].credentials.${name}`, message: `is the same credential as consumer "${owner}" has` });
      else credentialOwners.set(id, c.username);
    }
    checkPlugins(c.plugins, `consumers[${i}].plugins`, 'consumer', registry, problems, upstreamIds);
  });
  checkPlugins(cfg.globalPlugins, 'globalPlugins', 'global', registry, problems, upstreamIds);

  cfg.certificates.forEach((c, i) => {
    try {
      createSecureContext({ cert: c.cert, key: c.key });
    } catch (e) {
      // The message from OpenSSL names the failure, never the key material.
      problems.push({ path: `certificates[${i}]`, message: `cert and key do not form a usable pair: ${(e as Error).message}` });
    }
  });
  return problems;
}

/** Full validation of a declarative config: schema, defaults, then semantics. */
export function validateDeclarative(data: unknown, registry?: PluginValidator): ValidationResult<DeclarativeConfig> {
  const copy = data === null || data === undefined ? {} : structuredClone(data);
  const schemaResult = validateSchema<DeclarativeConfig>(DeclarativeConfig, copy);
  if (!schemaResult.ok) return schemaResult;
  const problems = checkSemantics(schemaResult.value, registry);
  return problems.length ? { ok: false, problems } : schemaResult;
}
