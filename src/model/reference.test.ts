/**
 * @module model/reference.test
 * docs/reference/ must match the schemas, and every schema field must be described.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TSchema } from '@sinclair/typebox';
import { referencePages } from './reference.js';
import { DeclarativeConfig } from './declarative.js';
import { Settings } from '../config/settings.js';

it('docs/reference is up to date (run `npm run docs` after changing a schema)', () => {
  for (const [name, text] of Object.entries(referencePages())) {
    const onDisk = readFileSync(new URL(`../../../docs/reference/${name}`, import.meta.url), 'utf8');
    assert.equal(onDisk, text, `docs/reference/${name} is stale`);
  }
});

it('every schema field has a description', () => {
  const missing: string[] = [];
  const walk = (s: TSchema, path: string) => {
    if (s.properties) {
      for (const [k, v] of Object.entries(s.properties as Record<string, TSchema>)) {
        if (!v.description && !(v.type === 'object' && v.properties && s.description)) missing.push(`${path}.${k}`);
        walk(v, `${path}.${k}`);
      }
    }
    if (s.items) walk(s.items as TSchema, `${path}[]`);
  };
  walk(DeclarativeConfig, 'declarative');
  walk(Settings, 'settings');
  assert.deepEqual(missing, []);
});
