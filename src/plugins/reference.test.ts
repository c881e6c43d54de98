/**
 * @module plugins/reference.test
 * docs/reference/plugins.md must match the plugin schemas, and every plugin must have its own page.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { pluginReferencePage } from './reference.js';
import { BUILTIN_PLUGINS } from './index.js';

it('docs/reference/plugins.md is up to date (run `npm run docs` after changing a plugin schema)', () => {
  const onDisk = readFileSync(new URL('../../../docs/reference/plugins.md', import.meta.url), 'utf8');
  assert.equal(onDisk, pluginReferencePage());
});

it('every built-in plugin has a page in docs/plugins and a row in its table', () => {
  const table = readFileSync(new URL('../../../docs/plugins/README.md', import.meta.url), 'utf8');
  for (const p of BUILTIN_PLUGINS) {
    assert.ok(existsSync(new URL(`../../../docs/plugins/${p.name}.md`, import.meta.url)), `docs/plugins/${p.name}.md`);
    assert.ok(table.includes(`| [${p.name}](${p.name}.md) | ${p.priority} |`), `${p.name} row with priority ${p.priority} in docs/plugins/README.md`);
  }
});
