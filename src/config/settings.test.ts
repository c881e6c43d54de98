/**
 * @module config/settings.test
 * Settings precedence (flags > GATEHOUSE_* > file > defaults), env name mapping and error paths.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSettings, SettingsError } from './settings.js';

function withFile(text: string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'gh-settings-'));
  try {
    const p = join(dir, 'gatehouse.yaml');
    writeFileSync(p, text);
    fn(p);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it('has the documented defaults', () => {
  const { settings } = loadSettings({ env: {} });
  assert.equal(settings.proxy.http, 9080);
  assert.equal(settings.proxy.https, 9443);
  assert.equal(settings.status.host, '127.0.0.1');
  assert.equal(settings.status.port, 9091);
  assert.equal(settings.admin.port, 9180);
  assert.equal(settings.workers, 'auto');
  assert.match(settings.instanceId!, /-9080$/);
});

it('maps GATEHOUSE_* names to key paths in upper snake case and coerces types', () => {
  const { settings, unknownEnv } = loadSettings({
    env: {
      GATEHOUSE_PROXY_HTTP: '8080',
      GATEHOUSE_STATUS_PORT: '9999',
      GATEHOUSE_INSTANCE_ID: 'edge-1',
      GATEHOUSE_DATA_DIR: '/var/lib/gatehouse',
      GATEHOUSE_WORKERS: '3',
      GATEHOUSE_ACCESS_LOG_ENABLED: 'false',
      GATEHOUSE_LOG_LEVEL: 'warn',
      GATEHOUSE_PROXY_TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.1',
      GATEHOUSE_CONFIG_PROVIDER_TYPE: 'file',
      GATEHOUSE_NOT_A_SETTING: 'x',
      GATEHOUSE_ADMIN_PASSWORD: 'never-a-setting',
    },
  });
  assert.equal(settings.proxy.http, 8080);
  assert.equal(settings.status.port, 9999);
  assert.equal(settings.instanceId, 'edge-1');
  assert.equal(settings.dataDir, '/var/lib/gatehouse');
  assert.equal(settings.workers, 3);
  assert.equal(settings.accessLog.enabled, false);
  assert.equal(settings.log.level, 'warn');
  assert.deepEqual(settings.proxy.trustedProxies, ['10.0.0.0/8', '192.0.2.1']);
  assert.deepEqual(unknownEnv, ['GATEHOUSE_NOT_A_SETTING']);
});

it('flags beat the environment, which beats the file', () => {
  withFile('proxy: { http: 7000, https: 7443 }\nworkers: 2\n', (file) => {
    const { settings } = loadSettings({ file, env: { GATEHOUSE_PROXY_HTTP: '7100', GATEHOUSE_WORKERS: 'auto' }, overrides: { workers: 4 } });
    assert.equal(settings.proxy.http, 7100);
    assert.equal(settings.proxy.https, 7443);
    assert.equal(settings.workers, 4);
  });
});

it('refuses bad settings naming the field path', () => {
  withFile('proxy: { http: "eighty", bogus: 1 }\n', (file) => {
    assert.throws(
      () => loadSettings({ file, env: {} }),
      (e: unknown) => e instanceof SettingsError && e.problems.some((p) => p.path === 'proxy.http') && e.problems.some((p) => p.path === 'proxy.bogus'),
    );
  });
  assert.throws(() => loadSettings({ env: { GATEHOUSE_PROXY_HTTP: '70000' } }), /proxy\.http/);
});

it('refuses trusted proxies that are not addresses or ranges, never widening trust', () => {
  for (const bad of ['10.0.0.0/', '10.0.0.0/abc', '10.0.0.0/33', 'not-an-ip', 'fe80::1%eth0']) {
    assert.throws(() => loadSettings({ env: {}, overrides: { 'proxy.trustedProxies': [bad] } }), /proxy\.trustedProxies\[0\]/, bad);
  }
  assert.deepEqual(loadSettings({ env: {}, overrides: { 'proxy.trustedProxies': ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'] } }).settings.proxy.trustedProxies.length, 3);
});

it('reports unreadable and non-YAML files clearly', () => {
  assert.throws(() => loadSettings({ file: join(tmpdir(), 'does-not-exist-gatehouse.yaml'), env: {} }), /cannot be read: ENOENT/);
  withFile('proxy: [unclosed\n', (file) => assert.throws(() => loadSettings({ file, env: {} }), /not valid YAML/));
});
