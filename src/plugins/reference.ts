/**
 * @module plugins/reference
 * docs/reference/plugins.md: every built-in plugin's config (and consumer credential) schema as tables,
 * generated like the other reference pages by `npm run docs` and kept current by a test.
 */
import { renderSchemaTables } from '../model/docs.js';
import { BUILTIN_PLUGINS } from './index.js';

const HEADER = '<!-- Generated from the plugin schemas in src/plugins by `npm run docs`. Do not edit by hand. -->\n\n';

export function pluginReferencePage(): string {
  const defs = [...BUILTIN_PLUGINS].sort((a, b) => a.name.localeCompare(b.name));
  const parts = [
    `${HEADER}# Plugin reference\n\nEvery built-in plugin's fields, generated from its schema. What each plugin does, with examples, is on its own page in [docs/plugins](../plugins/README.md).\n\n`,
    ...defs.map((d) => `- [${d.name}](#${d.name})\n`),
    '\n',
  ];
  for (const d of defs) {
    const scopes = (d.scopes ?? ['global', 'service', 'route', 'consumer']).join(', ');
    parts.push(`## ${d.name}\n\n${d.description} Priority ${d.priority}; scopes: ${scopes}. See [${d.name}](../plugins/${d.name}.md).\n\n`);
    parts.push(renderSchemaTables(d.name, d.schema, `plugins.${d.name}`));
    if (d.credentialSchema) parts.push(`\n### ${d.name} credential (consumers[].credentials.${d.name})\n\n${renderSchemaTables(`${d.name} credential`, d.credentialSchema, `credentials.${d.name}`)}`);
    parts.push('\n');
  }
  return parts.join('');
}
