#!/usr/bin/env node
// Writes docs/reference/*.md from the compiled schemas (run `npm run build` first; `npm run docs` does both).
import { writeFileSync, mkdirSync } from 'node:fs';
import { referencePages } from '../dist/src/model/reference.js';

const dir = new URL('../docs/reference/', import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(referencePages())) {
  writeFileSync(new URL(name, dir), text);
  console.log(`docs/reference/${name}`);
}
