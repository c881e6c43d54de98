/**
 * @module cluster/instances.test
 * The status URL a gateway advertises in its instance record: the setting, the status host, or, for a
 * wildcard host, an address of the machine another one can reach.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { advertisedStatusUrl } from './instances.js';

const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo =>
  ({ address, family, internal, netmask: family === 'IPv4' ? '255.255.255.0' : 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: null, scopeid: 0 }) as NetworkInterfaceInfo;

const machine = {
  hostname: 'gw-host-1',
  interfaces: {
    lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
    eth0: [nic('fe80::1', 'IPv6'), nic('10.1.2.3', 'IPv4'), nic('2001:db8::3', 'IPv6')],
    eth1: [nic('192.168.7.7', 'IPv4')],
  },
};

it('advertises status.advertiseAddress when set, with status.port unless it names a port', () => {
  assert.equal(advertisedStatusUrl({ host: '0.0.0.0', port: 9091, advertiseAddress: 'gw-1.internal' }, machine), 'http://gw-1.internal:9091');
  assert.equal(advertisedStatusUrl({ host: '0.0.0.0', port: 9091, advertiseAddress: 'gw-1.internal:19091' }, machine), 'http://gw-1.internal:19091');
  assert.equal(advertisedStatusUrl({ host: '0.0.0.0', port: 9091, advertiseAddress: 'fd00::7' }, machine), 'http://[fd00::7]:9091');
  assert.equal(advertisedStatusUrl({ host: '0.0.0.0', port: 9091, advertiseAddress: '[fd00::7]:9999' }, machine), 'http://[fd00::7]:9999');
  assert.throws(() => advertisedStatusUrl({ host: '0.0.0.0', port: 9091, advertiseAddress: 'http://x' }, machine), /status\.advertiseAddress: must be "host" or "host:port"/);
});

it('advertises the status host it listens on, when that names one', () => {
  assert.equal(advertisedStatusUrl({ host: '127.0.0.1', port: 9091 }, machine), 'http://127.0.0.1:9091');
  assert.equal(advertisedStatusUrl({ host: '10.9.9.9', port: 9555 }, machine), 'http://10.9.9.9:9555');
  assert.equal(advertisedStatusUrl({ host: 'fd00::9', port: 9091 }, machine), 'http://[fd00::9]:9091');
  assert.equal(advertisedStatusUrl({ host: 'mgmt.gw-host-1', port: 9091 }, machine), 'http://mgmt.gw-host-1:9091');
});

it('for a wildcard status host, advertises the first non-loopback IPv4 address, else a global IPv6 one, else the host name', () => {
  for (const host of ['0.0.0.0', '::']) assert.equal(advertisedStatusUrl({ host, port: 9091 }, machine), 'http://10.1.2.3:9091', host);
  const v6only = { hostname: 'gw-host-2', interfaces: { lo: [nic('127.0.0.1', 'IPv4', true)], eth0: [nic('fe80::2', 'IPv6'), nic('2001:db8::2', 'IPv6')] } };
  assert.equal(advertisedStatusUrl({ host: '0.0.0.0', port: 9091 }, v6only), 'http://[2001:db8::2]:9091');
  const loopbackOnly = { hostname: 'gw-host-3', interfaces: { lo: [nic('127.0.0.1', 'IPv4', true)], eth0: [nic('fe80::3', 'IPv6')] } };
  assert.equal(advertisedStatusUrl({ host: '::', port: 9091 }, loopbackOnly), 'http://gw-host-3:9091');
});

it('advertises nothing when the status port is picked at start (0), unless the setting names the port', () => {
  assert.equal(advertisedStatusUrl({ host: '127.0.0.1', port: 0 }, machine), null);
  assert.equal(advertisedStatusUrl({ host: '127.0.0.1', port: 0, advertiseAddress: 'gw-1' }, machine), null);
  assert.equal(advertisedStatusUrl({ host: '127.0.0.1', port: 0, advertiseAddress: 'gw-1:9091' }, machine), 'http://gw-1:9091');
});
