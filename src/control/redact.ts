/**
 * @module control/redact
 * Secrets are write-only in the admin API: every field its schema marks `writeOnly` (consumer keys and
 * passwords, certificate keys, Redis passwords in plugin configs...) is replaced by a placeholder in what the
 * API returns and what the audit trail keeps. A write that sends the placeholder back keeps the stored secret,
 * so a client can round-trip an entity it read without knowing its secrets.
 */
import type { TSchema } from '@sinclair/typebox';
import type { PluginRegistry } from '../dataplane/plugins/registry.js';
import { Certificate } from '../model/certificate.js';
import type { EntityKind } from '../store/types.js';

export const REDACTED = '[redacted]';

type Json = unknown;

function schemaOf(s: TSchema | undefined, key: string): TSchema | undefined {
  if (!s) return undefined;
  const props = s.properties as Record<string, TSchema> | undefined;
  if (props?.[key]) return props[key];
  if (s.additionalProperties && typeof s.additionalProperties === 'object') return s.additionalProperties as TSchema;
  const pattern = s.patternProperties as Record<string, TSchema> | undefined;
  if (pattern) return Object.values(pattern)[0];
  for (const alt of [...((s.anyOf as TSchema[]) ?? []), ...((s.oneOf as TSchema[]) ?? []), ...((s.allOf as TSchema[]) ?? [])]) {
    const found = schemaOf(alt, key);
    if (found) return found;
  }
  return undefined;
}

function isWriteOnly(s: TSchema | undefined): boolean {
  if (!s) return false;
  if (s.writeOnly === true) return true;
  return [...((s.anyOf as TSchema[]) ?? []), ...((s.oneOf as TSchema[]) ?? [])].some((x) => x.writeOnly === true);
}

/**
 * Walk `value` with its schema: `mode` redact replaces write-only values; restore puts `stored` values back
 * where `value` carries the placeholder.
 */
function walk(value: Json, schema: TSchema | undefined, stored: Json, mode: 'redact' | 'restore'): Json {
  if (isWriteOnly(schema)) {
    if (mode === 'redact') return value === undefined ? undefined : REDACTED;
    return value === REDACTED ? stored : value;
  }
  if (Array.isArray(value)) {
    const items = schema?.items as TSchema | undefined;
    return value.map((v, i) => walk(v, items, Array.isArray(stored) ? stored[i] : undefined, mode));
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, Json> = {};
    const st = stored !== null && typeof stored === 'object' ? (stored as Record<string, Json>) : {};
    for (const [k, v] of Object.entries(value)) out[k] = walk(v, schemaOf(schema, k), st[k], mode);
    return out;
  }
  return value;
}

/** The schemas of the secret-bearing parts of an entity: plugin configs, consumer credentials, certificates. */
function walkEntity(kind: EntityKind, value: Record<string, Json>, stored: Record<string, Json> | null, plugins: PluginRegistry, mode: 'redact' | 'restore'): Record<string, Json> {
  const out: Record<string, Json> = { ...value };
  const st = stored ?? {};
  if (kind === 'certificates') return walk(value, Certificate, stored, mode) as Record<string, Json>;
  if (kind === 'global-plugins') {
    // The entity is one plugin's config; its id (the plugin name) is not in the value.
    return value;
  }
  const pluginMap = value.plugins as Record<string, Json> | undefined;
  if (pluginMap && typeof pluginMap === 'object') {
    const stPlugins = (st.plugins ?? {}) as Record<string, Json>;
    out.plugins = Object.fromEntries(Object.entries(pluginMap).map(([name, cfg]) => [name, walk(cfg, plugins.get(name)?.schema, stPlugins[name], mode)]));
  }
  if (kind === 'consumers') {
    const creds = value.credentials as Record<string, Json> | undefined;
    if (creds && typeof creds === 'object') {
      const stCreds = (st.credentials ?? {}) as Record<string, Json>;
      out.credentials = Object.fromEntries(
        Object.entries(creds).map(([name, c]) => {
          const schema = plugins.get(name)?.credentialSchema;
          // A credential of a plugin we do not know is all secret.
          if (!schema) return [name, mode === 'redact' ? REDACTED : c === REDACTED ? stCreds[name] : c];
          return [name, walk(c, schema, stCreds[name], mode)];
        }),
      );
    }
  }
  return out;
}

export function redactEntity(kind: EntityKind, id: string, value: Record<string, Json> | null, plugins: PluginRegistry): Record<string, Json> | null {
  if (value === null) return null;
  if (kind === 'global-plugins') return walk(value, plugins.get(id)?.schema, null, 'redact') as Record<string, Json>;
  return walkEntity(kind, value, null, plugins, 'redact');
}

/** A written entity with placeholders replaced by the secrets stored before (in its draft). */
export function restoreSecrets(kind: EntityKind, id: string, value: Record<string, Json>, stored: Record<string, Json> | null, plugins: PluginRegistry): Record<string, Json> {
  if (kind === 'global-plugins') return walk(value, plugins.get(id)?.schema, stored, 'restore') as Record<string, Json>;
  return walkEntity(kind, value, stored, plugins, 'restore');
}
