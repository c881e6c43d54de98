/**
 * @module test/plugin-docs
 * The worked example in docs/plugin-development.md, run as a reader would: the plugin file copied from the
 * doc into a plugin directory, the route config from the doc, real traffic.
 */
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startInProcessGateway } from '../src/process/in-process.js';
import { node, startUpstream } from './helpers/upstream.js';
import { json, send } from './helpers/http.js';

const doc = readFileSync(new URL('../../docs/plugin-development.md', import.meta.url), 'utf8');
const blocks = [...doc.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], code: m[2]! }));

const dir = mkdtempSync(join(tmpdir(), 'gh-plugin-doc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('the worked example plugin loads and behaves as the doc says', async (t) => {
  const plugin = blocks.find((b) => b.lang === 'js' && b.code.includes("name: 'require-tenant'"));
  assert.ok(plugin, 'the doc has the example plugin');
  writeFileSync(join(dir, 'require-tenant.mjs'), plugin.code);
  const routeYaml = blocks.find((b) => b.lang === 'yaml' && b.code.includes('require-tenant: { tenants'));
  assert.ok(routeYaml, 'the doc has the route config');
  const { routes } = parse(routeYaml.code) as { routes: Array<Record<string, unknown>> };

  const up = await startUpstream();
  t.after(() => up.close());
  const gw = await startInProcessGateway({
    config: { upstreams: [{ id: 'reports', nodes: [node(up.port)] }], routes },
    settings: { 'plugins.directory': dir },
  });
  t.after(() => gw.close());

  const denied = await send(gw.http, '/reports/q1', { headers: { 'x-tenant': 'initech' } });
  assert.equal(denied.status, 403);
  assert.equal((json(denied).error as { code: string }).code, 'GH_ERR_ACCESS_DENIED');
  const allowed = await send(gw.http, '/reports/q1', { headers: { 'x-tenant': 'acme' } });
  assert.equal(allowed.status, 200);
  assert.equal((json(allowed).headers as Record<string, string>)['x-tenant-checked'], 'acme');
  assert.throws(() => gw.apply({ upstreams: [{ id: 'reports', nodes: [node(up.port)] }], routes: [{ id: 'r', paths: ['/x'], upstreamId: 'reports', plugins: { 'require-tenant': {} } }] }), /routes\[0\]\.plugins\.require-tenant\.tenants: is required/);
});
