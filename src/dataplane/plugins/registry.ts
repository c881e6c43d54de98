/**
 * @module dataplane/plugins/registry
 * The plugins this process knows: the built-in ones and those loaded from the directory the settings name.
 * Refuses an incomplete definition or a taken name or priority, and validates plugin config per scope.
 */
import { readdir } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { validateSchema, type ConfigProblem, type PluginValidator } from '../../model/validate.js';
import type { PluginDefinition, PluginScope } from './types.js';

export class PluginDefinitionError extends Error {
  constructor(source: string, message: string) {
    super(`plugin ${source}: ${message}`);
    this.name = 'PluginDefinitionError';
  }
}

const ALL_SCOPES: PluginScope[] = ['global', 'service', 'route', 'consumer'];

/** Every property of an object schema, recursively, must say what it is for. */
function undescribed(schema: TSchema, path: string, out: string[]): string[] {
  const props = schema.properties as Record<string, TSchema> | undefined;
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (!v.description) out.push(`${path}.${k}`);
      undescribed(v, `${path}.${k}`, out);
    }
  }
  if (schema.items && typeof schema.items === 'object') undescribed(schema.items as TSchema, `${path}[]`, out);
  return out;
}

type AnyPlugin = PluginDefinition<any, any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export class PluginRegistry implements PluginValidator {
  private readonly defs = new Map<string, AnyPlugin>();
  private readonly priorities = new Map<number, string>();

  register(def: AnyPlugin, source = def?.name ?? '(unnamed)'): void {
    if (!def || typeof def !== 'object') throw new PluginDefinitionError(source, 'the module must export a plugin definition (export default definePlugin({...}))');
    if (typeof def.name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(def.name)) throw new PluginDefinitionError(source, 'name must be kebab-case');
    if (typeof def.version !== 'string' || !/^\d+\.\d+\.\d+/.test(def.version)) throw new PluginDefinitionError(source, 'version must be semver ("1.0.0")');
    if (!Number.isInteger(def.priority)) throw new PluginDefinitionError(source, 'priority must be an integer');
    if (typeof def.description !== 'string' || !def.description) throw new PluginDefinitionError(source, 'description is required');
    if (!def.schema || typeof def.schema !== 'object' || def.schema.type !== 'object') throw new PluginDefinitionError(source, 'schema must be a JSON Schema object');
    if (typeof def.create !== 'function') throw new PluginDefinitionError(source, 'create(config, env) is required');
    if (def.credentialSchema && typeof def.indexCredentials !== 'function') throw new PluginDefinitionError(source, 'an auth plugin with credentialSchema needs indexCredentials');
    const missing = undescribed(def.schema, 'schema', []);
    if (def.credentialSchema) undescribed(def.credentialSchema, 'credentialSchema', missing);
    if (missing.length) throw new PluginDefinitionError(source, `every field needs a description: ${missing.join(', ')}`);
    if (this.defs.has(def.name)) throw new PluginDefinitionError(source, `the name "${def.name}" is taken`);
    const taken = this.priorities.get(def.priority);
    if (taken !== undefined) throw new PluginDefinitionError(source, `priority ${def.priority} is taken by "${taken}"`);
    this.defs.set(def.name, def);
    this.priorities.set(def.priority, def.name);
  }

  get(name: string): AnyPlugin | undefined {
    return this.defs.get(name);
  }

  has(name: string): boolean {
    return this.defs.has(name);
  }

  list(): AnyPlugin[] {
    return [...this.defs.values()].sort((a, b) => b.priority - a.priority);
  }

  credentialKey(name: string, credential: unknown): string | undefined {
    const def = this.defs.get(name);
    if (!def?.credentialKey || credential === null || typeof credential !== 'object') return undefined;
    try {
      return def.credentialKey(credential);
    } catch {
      return undefined;
    }
  }

  /** PluginValidator: check one plugin config (defaults are filled in place). */
  validate(name: string, config: unknown, path: string, level: 'route' | 'service' | 'global' | 'consumer' | 'credential'): ConfigProblem[] {
    const def = this.defs.get(name);
    if (!def) return [{ path, message: `unknown plugin "${name}"` }];
    if (level === 'credential') {
      if (!def.credentialSchema) return [{ path, message: `"${name}" is not an auth plugin and takes no credentials` }];
      const r = validateSchema(def.credentialSchema, config, path);
      // An unknown field name in a credential may be the secret itself (`key-auth: { my-secret }`): never echo it.
      if (!r.ok) return r.problems.map((p) => (p.message === 'is not a known field' ? { path, message: 'has a field that is not known' } : p));
      return (def.checkCredential?.(config) ?? []).map(([p, message]) => ({ path: p ? `${path}.${p}` : path, message }));
    }
    const scopes = def.scopes ?? ALL_SCOPES;
    if (!scopes.includes(level)) return [{ path, message: `"${name}" cannot be configured on a ${level} (only on: ${scopes.join(', ')})` }];
    const r = validateSchema(def.schema, config, path);
    if (!r.ok) return r.problems;
    return (def.check?.(config) ?? []).map(([p, message]) => ({ path: p ? `${path}.${p}` : path, message }));
  }

  /** PluginValidator: the upstream ids a plugin config names (only called on a config that passed validate). */
  upstreamReferences(name: string, config: unknown): Array<[string, string]> {
    const def = this.defs.get(name);
    if (!def?.upstreamReferences || config === null || typeof config !== 'object') return [];
    return def.upstreamReferences(config);
  }
}

/**
 * Load every plugin module (*.js, *.mjs) in a directory: each must `export default` a plugin definition.
 * Users keep their plugins apart from Gatehouse's code; a broken one stops start-up with its file named.
 */
export async function loadPluginDirectory(dir: string, registry: PluginRegistry): Promise<string[]> {
  const abs = resolve(dir);
  let names: string[];
  try {
    names = (await readdir(abs)).filter((n) => ['.js', '.mjs'].includes(extname(n))).sort();
  } catch (e) {
    throw new PluginDefinitionError(abs, `cannot read the plugin directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const loaded: string[] = [];
  for (const n of names) {
    const file = join(abs, n);
    let mod: { default?: AnyPlugin };
    try {
      mod = (await import(pathToFileURL(file).href)) as { default?: AnyPlugin };
    } catch (e) {
      throw new PluginDefinitionError(n, `cannot be loaded: ${(e as Error).message}`);
    }
    registry.register(mod.default as AnyPlugin, n);
    loaded.push(mod.default!.name);
  }
  return loaded;
}
