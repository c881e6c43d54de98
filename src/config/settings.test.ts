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

it('takes status.advertiseAddress as host, host:port or an IPv6 address, and refuses URLs and bad ports by path', () => {
  const load = (value: string) => loadSettings({ env: { GATEHOUSE_STATUS_ADVERTISE_ADDRESS: value } }).settings.status.advertiseAddress;
  for (const good of ['gw-1.internal', 'gw-1.internal:19091', '10.0.0.7', '10.0.0.7:9091', 'fd00::7', '[fd00::7]', '[fd00::7]:9091', 'gateway_1']) assert.equal(load(good), good);
  assert.equal(loadSettings({ env: {} }).settings.status.advertiseAddress, undefined);
  withFile('status: { host: 0.0.0.0, advertiseAddress: "gw-2:9091" }\n', (file) => assert.equal(loadSettings({ file, env: {} }).settings.status.advertiseAddress, 'gw-2:9091'));
  const refused: Array<[string, RegExp]> = [
    ['http://gw-1:9091', /without a scheme/],
    ['gw-1:9091/metrics', /without a scheme \(http:\/\/\) or a path/],
    ['gw-1:0', /port "0" is not a number from 1 to 65535/],
    ['gw-1:70000', /port "70000"/],
    ['gw-1:', /port ""/],
    ['[gw-1]:9091', /is not an IPv6 address/],
    ['fd00::7:9091:x', /is not a host name or IP address/],
    ['gw 1', /"gw 1" is not a host name/],
    ['-gw', /is not a host name/],
  ];
  for (const [bad, message] of refused) {
    assert.throws(
      () => load(bad),
      (e: unknown) => e instanceof SettingsError && e.problems.some((p) => p.path === 'status.advertiseAddress' && message.test(p.message)),
      bad,
    );
  }
});
