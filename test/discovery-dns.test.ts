/**
 * @module test/discovery-dns.test
 * An upstream whose nodes come from DNS, through the in-process gateway, against a real dnsmasq on a loopback
 * port whose A records change while requests flow: an added address gets traffic within seconds, a removed
 * one gets none, and no request fails. A DNS outage keeps the last nodes (metrics say the source is down);
 * a name that disappears is honoured only after the grace period; an upstream whose source has not given any
 * node answers 503.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startInProcessGateway, type InProcessGateway } from '../src/process/in-process.js';
import { discoveryKeyOf } from '../src/discovery/spec.js';
import { dnsSkip, TestDns } from './helpers/dns.js';
import { metricValue, parsePrometheus, sleep, waitUntil } from './helpers/cli.js';

const skip = dnsSkip();
const D = TestDns.DOMAIN;
const NAME = `api.${D}`;
/** The loopback addresses the nodes listen on (one port for all: an A record carries no port). */
const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];

interface Node {
  ip: string;
  server: Server;
  count: number;
}

async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** One HTTP server per address, all on the same port, each answering with its own address. */
async function startNodes(): Promise<{ port: number; nodes: Node[] }> {
  for (let attempt = 0; ; attempt++) {
    const nodes: Node[] = [];
    try {
      let port = 0;
      for (const ip of IPS) {
        const node: Node = { ip, server: createServer(), count: 0 };
        node.server.on('request', (req, res) => {
          node.count++;
          req.resume();
          req.on('end', () => res.end(ip));
        });
        nodes.push(node);
        port = await listen(node.server, ip, port);
      }
      return { port, nodes };
    } catch (e) {
      for (const n of nodes) n.server.close();
      if (attempt >= 5) throw e;
    }
  }
}

interface Result {
  status: number;
  body: string;
}

function get(port: number, path: string, agent: Agent): Promise<Result> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ status: -1, body: e.message }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
    req.end();
  });
}

/** Bounded load: `concurrency` loops of sequential requests until stop() or `max` requests or `maxMs`. */
function startLoad(port: number, opts: { concurrency: number; max: number; maxMs: number }) {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const results: Result[] = [];
  let stopped = false;
  const deadline = Date.now() + opts.maxMs;
  const loop = async () => {
    while (!stopped && results.length < opts.max && Date.now() < deadline) {
      results.push(await get(port, '/api/x', agent));
    }
  };
  const done = Promise.all(Array.from({ length: opts.concurrency }, loop));
  return {
    results,
    async stop(): Promise<Result[]> {
      stopped = true;
      await done;
      agent.destroy();
      return results;
    },
  };
}

describe('dns discovery through the gateway', { skip }, () => {
  let dns: TestDns;
  let gw: InProcessGateway;
  let nodes: Node[];
  let port: number;
  const key = () => discoveryKeyOf({ discovery: { type: 'dns', service: NAME, port } })!;
  const hosts = (ips: string[]) => ({ [NAME]: ips });
  const runtimeNodes = () => gw.gateway.current!.upstreams.get('upstream:api')!.nodes.map((n) => n.host).sort();

  before(async () => {
    ({ port, nodes } = await startNodes());
    dns = await TestDns.start({ hosts: hosts(IPS.slice(0, 2)), ttl: 1 });
    gw = await startInProcessGateway({
      statusServer: true,
      settings: {
        'discovery.dns.resolvers': [dns.address],
        'discovery.dns.retryInterval': 200,
        'discovery.dns.timeout': 300,
        'discovery.emptyGracePeriod': 3000,
      },
      config: {
        upstreams: [
          { id: 'api', discovery: { type: 'dns', service: NAME, port }, retries: 0 },
          { id: 'ghost', discovery: { type: 'dns', service: `ghost.${D}`, port } },
        ],
        routes: [
          { id: 'api', paths: ['/api/*'], upstreamId: 'api' },
          { id: 'ghost', paths: ['/ghost'], upstreamId: 'ghost' },
        ],
      },
    });
    await waitUntil('the first DNS answer to reach the upstream', 5000, () => (runtimeNodes().length === 2 ? true : undefined));
  });
  after(async () => {
    await gw?.close();
    await dns?.close();
    for (const n of nodes ?? []) n.server.close();
  });

  it('gives new addresses traffic within seconds and removed ones none, without a failed request', async () => {
    const load = startLoad(gw.http, { concurrency: 4, max: 40_000, maxMs: 40_000 });
    try {
      await waitUntil('traffic on the first two nodes', 5000, () => (nodes[0]!.count > 20 && nodes[1]!.count > 20 ? true : undefined));
      assert.equal(nodes[2]!.count, 0);

      await dns.setHosts(hosts(IPS));
      const added = Date.now();
      await waitUntil('traffic on the added node', 6000, () => (nodes[2]!.count > 20 ? true : undefined));
      const addedAfter = Date.now() - added;
      assert.ok(addedAfter < 5000, `the new node got traffic after ${addedAfter} ms`);

      await dns.setHosts(hosts(IPS.slice(1)));
      const removed = Date.now();
      await waitUntil('the node to leave the upstream', 6000, () => (!runtimeNodes().includes(IPS[0]!) ? true : undefined));
      assert.ok(Date.now() - removed < 5000);
      // Requests that were in flight to the removed node finish there; none starts after it left.
      await sleep(100);
      const countAtRemoval = nodes[0]!.count;
      const before = load.results.length;
      await waitUntil('more traffic after the removal', 10_000, () => (load.results.length > before + 400 ? true : undefined));
      assert.equal(nodes[0]!.count, countAtRemoval, 'the removed node got requests after it left');
      assert.ok(nodes[1]!.count > 0 && nodes[2]!.count > 0);
    } finally {
      await load.stop();
    }
    const failed = load.results.filter((r) => r.status !== 200);
    assert.equal(failed.length, 0, `${failed.length} of ${load.results.length} requests failed: ${JSON.stringify(failed.slice(0, 3))}`);
    assert.ok(load.results.length > 500, `only ${load.results.length} requests were made`);
  });

  it('keeps the last nodes while the DNS server is down, and reports it in /metrics', async () => {
    const agent = new Agent({ keepAlive: true });
    await dns.stop();
    try {
      await waitUntil('the outage to be seen', 5000, () => (gw.discovery.state(key())?.up === false ? true : undefined));
      for (let i = 0; i < 20; i++) assert.equal((await get(gw.http, '/api/x', agent)).status, 200);
      const text = await (await fetch(`http://127.0.0.1:${gw.status}/metrics`)).text();
      const samples = parsePrometheus(text);
      const labels = { source: 'dns', cluster: '', service: NAME, watch: key() };
      assert.equal(metricValue(samples, 'gatehouse_discovery_source_up', labels), 0);
      assert.equal(metricValue(samples, 'gatehouse_discovery_nodes', labels), 2);
      assert.ok((metricValue(samples, 'gatehouse_discovery_errors_total', labels) ?? 0) >= 1);
      assert.deepEqual(runtimeNodes(), IPS.slice(1));
    } finally {
      await dns.start();
      agent.destroy();
    }
    await waitUntil('the source to be back', 8000, () => (gw.discovery.state(key())?.up === true ? true : undefined));
  });

  it('honours a name that disappeared only after the grace period, then answers 503', async () => {
    const agent = new Agent({ keepAlive: true });
    try {
      await dns.setHosts({});
      await waitUntil('the empty answer', 5000, () => (gw.discovery.state(key())?.emptySince ? true : undefined));
      const emptySince = Date.parse(gw.discovery.state(key())!.emptySince!);
      // Inside the grace period every request is still served by the last known nodes.
      while (Date.now() - emptySince < 1500) assert.equal((await get(gw.http, '/api/x', agent)).status, 200);
      await waitUntil('the nodes to be dropped', 5000, () => (runtimeNodes().length === 0 ? true : undefined));
      assert.ok(Date.now() - emptySince >= 2900);
      const r = await get(gw.http, '/api/x', agent);
      assert.equal(r.status, 503);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'GH_ERR_UPSTREAM_NO_HEALTHY_NODE');
      // Back in DNS: back in service, with no grace period to wait for.
      await dns.setHosts(hosts([IPS[2]!]));
      await waitUntil('the node to come back', 5000, async () => ((await get(gw.http, '/api/x', agent)).status === 200 ? true : undefined));
      assert.deepEqual(runtimeNodes(), [IPS[2]]);
    } finally {
      agent.destroy();
    }
  });

  it('answers 503 for an upstream whose source has never given a node', async () => {
    const r = await get(gw.http, '/ghost', new Agent());
    assert.equal(r.status, 503);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'GH_ERR_UPSTREAM_NO_HEALTHY_NODE');
  });
});
