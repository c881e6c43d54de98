#!/usr/bin/env node
// Writes docs/reference/*.md from the compiled schemas (run `npm run build` first; `npm run docs` does both).
import { writeFileSync, mkdirSync } from 'node:fs';
import { referencePages } from '../dist/src/model/reference.js';
import { pluginReferencePage } from '../dist/src/plugins/reference.js';

const dir = new URL('../docs/reference/', import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries({ ...referencePages(), 'plugins.md': pluginReferencePage() })) {
  writeFileSync(new URL(name, dir), text);
  console.log(`docs/reference/${name}`);
}
