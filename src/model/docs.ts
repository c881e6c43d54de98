/**
 * @module model/docs
 * Renders entity and settings schemas as Markdown reference tables, so docs/reference/ is generated from the
 * same definitions that validate config (`npm run docs` writes it; a test fails when it is stale).
 */
import type { TSchema } from '@sinclair/typebox';

function typeOf(s: TSchema): string {
  if (s.enum) return (s.enum as unknown[]).map((v) => `\`${String(v)}\``).join(' \\| ');
  if (s.anyOf) return (s.anyOf as TSchema[]).map(typeOf).join(' \\| ');
  if (s.const !== undefined) return `\`${String(s.const)}\``;
  if (s.type === 'array') return `${typeOf(s.items as TSchema)}[]`;
  if (s.type === 'object' && s.patternProperties) return 'map';
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') return 'map';
  return String(s.type ?? 'any');
}

function constraints(s: TSchema): string {
  const c: string[] = [];
  if (s.minimum !== undefined) c.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) c.push(`≤ ${s.maximum}`);
  if (s.minItems !== undefined) c.push(`at least ${s.minItems}`);
  if (s.maxItems !== undefined) c.push(`at most ${s.maxItems}`);
  if (s.pattern !== undefined) c.push(`pattern \`${String(s.pattern).replace(/\|/g, '\\|')}\``);
  return c.join(', ');
}

function cell(v: unknown): string {
  return String(v ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Objects nested in this schema that deserve their own table (field path -> schema). */
function nestedObjects(s: TSchema): TSchema | undefined {
  if (s.type === 'object' && s.properties) return s;
  if (s.type === 'array' && (s.items as TSchema)?.type === 'object' && (s.items as TSchema).properties) return s.items as TSchema;
  return undefined;
}

export function renderSchemaTables(title: string, schema: TSchema, path = ''): string {
  const out: string[] = [];
  const queue: Array<[string, TSchema]> = [[path, schema]];
  const seen = new Set<TSchema>();
  while (queue.length) {
    const [p, s] = queue.shift()!;
    if (seen.has(s)) continue;
    seen.add(s);
    const required = new Set((s.required as string[] | undefined) ?? []);
    out.push(`### ${p || title}`, '');
    if (s.description) out.push(String(s.description), '');
    out.push('| field | type | required | default | description |', '|---|---|---|---|---|');
    for (const [name, prop] of Object.entries(s.properties as Record<string, TSchema>)) {
      const def = prop.default !== undefined && typeof prop.default !== 'object' ? `\`${String(prop.default)}\`` : prop.default !== undefined ? `\`${JSON.stringify(prop.default)}\`` : '';
      const extra = constraints(prop);
      out.push(`| \`${name}\` | ${typeOf(prop)} | ${required.has(name) && prop.default === undefined ? 'yes' : ''} | ${cell(def)} | ${cell(prop.description)}${extra ? ` (${cell(extra)})` : ''} |`);
      const nested = nestedObjects(prop);
      if (nested) queue.push([p ? `${p}.${name}` : name, nested]);
    }
    out.push('');
  }
  return out.join('\n');
}
