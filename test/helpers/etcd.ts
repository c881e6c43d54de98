/**
 * @module test/helpers/etcd
 * A real single-member etcd for tests, on free loopback ports with a temporary data directory. It can be
 * killed (SIGKILL, as abrupt as a crash) and started again on the same ports and data, compact its history,
 * and turn on authentication with a user limited to one prefix. Outside CI a machine without etcd skips the
 * tests that need it; under CI (CI=true) they fail instead, since CI installs it (Debian package etcd-server).
 *
 * Everything is done through etcd's JSON gateway, so no etcdctl is needed. Data directories are removed, and
 * any etcd still running is killed, when the test process exits.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { freePort, sleep } from './cli.js';
import { cleanupOnExit, skipUnlessPresent } from './required.js';

export function etcdAvailable(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Skip reason for node:test, or false when the tests can run (never skips under CI). */
export function etcdSkip(): string | false {
  return skipUnlessPresent(etcdAvailable() ? null : 'etcd is not installed (Debian package etcd-server)');
}

const { children: running, dirs: dataDirs } = cleanupOnExit();

export interface TestEtcdOptions {
  /** Extra etcd flags, e.g. ['--auth-token-ttl', '1']. */
  args?: string[];
  /** Serve clients over TLS (https endpoint); with `clientCa`, only clients with a certificate it signed. */
  tls?: { cert: string; key: string; clientCa?: string; clientCert?: string; clientKey?: string };
}

export interface EtcdTestCerts {
  /** PEM: the CA that signed the other two. */
  ca: string;
  /** PEM: a server certificate for IP 127.0.0.1, and its key. */
  serverCert: string;
  serverKey: string;
  /** PEM: a client certificate (CN gatehouse), and its key. */
  clientCert: string;
  clientKey: string;
}

/** A CA with a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
export function etcdTestCerts(): EtcdTestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-etcd-certs-'));
  try {
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
    const newKey = ['-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
    ssl('req', '-x509', ...newKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=gatehouse-test-ca');
    const signed = (name: string, cn: string, ext: string) => {
      ssl('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      writeFileSync(join(dir, `${name}.ext`), ext);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
    };
    // etcd's gateway dials its own gRPC port with the server certificate, so it serves as a client one too.
    signed('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
    signed('client', 'gatehouse', 'extendedKeyUsage=clientAuth\n');
    const read = (f: string) => readFileSync(join(dir, f), 'utf8');
    return { ca: read('ca.crt'), serverCert: read('server.crt'), serverKey: read('server.key'), clientCert: read('client.crt'), clientKey: read('client.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface EtcdAuthSetup {
  /** The user the tests connect as; it may read and write keys under `prefix` only. */
  user: string;
  password: string;
  prefix: string;
}

export class TestEtcd {
  private child: ChildProcess | null = null;
  private stderr = '';
  /** With auth on: the root password, for the helper's own admin calls (compact, grants). */
  private rootPassword: string | null = null;

  /** The helper's own requests: over TLS when etcd serves it (not verifying etcd, presenting the client certificate). */
  private readonly dispatcher: Dispatcher | undefined;
  private readonly args: string[];

  private constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    opts: TestEtcdOptions,
  ) {
    this.args = [...(opts.args ?? [])];
    if (opts.tls) {
      writeFileSync(join(dataDir, 'server.crt'), opts.tls.cert);
      writeFileSync(join(dataDir, 'server.key'), opts.tls.key, { mode: 0o600 });
      this.args.push('--cert-file', join(dataDir, 'server.crt'), '--key-file', join(dataDir, 'server.key'));
      if (opts.tls.clientCa) {
        writeFileSync(join(dataDir, 'client-ca.crt'), opts.tls.clientCa);
        this.args.push('--client-cert-auth', '--trusted-ca-file', join(dataDir, 'client-ca.crt'));
      }
      this.dispatcher = new Agent({ connect: { rejectUnauthorized: false, cert: opts.tls.clientCert, key: opts.tls.clientKey } });
    }
  }

  /** The client URL. */
  get endpoint(): string {
    return `${this.dispatcher ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  static async start(opts: TestEtcdOptions = {}): Promise<TestEtcd> {
    const clientPort = await freePort();
    let peerPort = await freePort();
    while (peerPort === clientPort) peerPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-etcd-'));
    dataDirs.add(dir);
    const e = new TestEtcd(clientPort, peerPort, dir, opts);
    await e.start();
    return e;
  }

  /** Start (again) on the same ports and data directory; resolves once the member reports itself healthy. */
  async start(): Promise<void> {
    if (this.child) return;
    const client = this.endpoint;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      'etcd',
      [
        '--name', 'test',
        '--data-dir', join(this.dataDir, 'data'),
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `test=${peer}`,
        '--initial-cluster-state', 'new',
        '--logger', 'zap',
        '--log-level', 'error',
        ...this.args,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    running.add(child);
    this.stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
    });
    const deadline = Date.now() + 15_000;
    while (!(await this.healthy())) {
      if (exited) {
        this.child = null;
        throw new Error(`etcd exited while starting on port ${this.clientPort}: ${this.stderr.trim()}`);
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy on port ${this.clientPort}: ${this.stderr.trim()}`);
      await sleep(25);
    }
  }

  /** Kill it (SIGKILL: as abrupt as a crash) and wait until it has exited; the data directory is kept. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGKILL');
      await exited;
    }
  }

  /** Compact the history up to `revision` (physical: done when this resolves). */
  async compact(revision: number): Promise<void> {
    await this.admin('/v3/kv/compaction', { revision, physical: true });
  }

  /**
   * Turn authentication on: a root user, and `user` with a role that may read and write `prefix` only.
   * The admin calls this helper makes afterwards (compact, invalidateTokens) authenticate as root.
   */
  async enableAuth(setup: EtcdAuthSetup): Promise<void> {
    const rootPassword = randomBytes(12).toString('hex');
    const prefix = Buffer.from(setup.prefix, 'utf8');
    const end = Buffer.from(prefix);
    end[end.length - 1]!++;
    await this.admin('/v3/auth/user/add', { name: 'root', password: rootPassword });
    await this.admin('/v3/auth/role/add', { name: 'root' });
    await this.admin('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await this.admin('/v3/auth/role/add', { name: 'gatehouse' });
    await this.admin('/v3/auth/role/grant', { name: 'gatehouse', perm: { permType: 'READWRITE', key: prefix.toString('base64'), range_end: end.toString('base64') } });
    await this.admin('/v3/auth/user/add', { name: setup.user, password: setup.password });
    await this.admin('/v3/auth/user/grant', { user: setup.user, role: 'gatehouse' });
    await this.admin('/v3/auth/enable', {});
    this.rootPassword = rootPassword;
  }

  /**
   * Make etcd forget every token it issued ("invalid auth token" from then on): auth turned off and on again
   * empties the member's simple-token store, as an expired token or a new member would.
   */
  async invalidateTokens(): Promise<void> {
    await this.admin('/v3/auth/disable', {});
    await this.post('/v3/auth/enable', {});
  }

  /** A token for `user`, straight from etcd (to check what etcd itself accepts). */
  async authenticate(user: string, password: string): Promise<string> {
    const r = (await this.post('/v3/auth/authenticate', { name: user, password })) as { token: string };
    return r.token;
  }

  /** A raw POST to the JSON gateway; rejects with etcd's message on an error status. */
  async post(path: string, body: unknown, token?: string): Promise<unknown> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = token;
    const res = await request(`${this.endpoint}${path}`, { method: 'POST', headers, body: JSON.stringify(body), headersTimeout: 10_000, bodyTimeout: 10_000, dispatcher: this.dispatcher });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`etcd ${path}: HTTP ${res.statusCode} ${text}`);
    return JSON.parse(text);
  }

  private async admin(path: string, body: unknown): Promise<unknown> {
    const token = this.rootPassword === null ? undefined : await this.authenticate('root', this.rootPassword);
    return this.post(path, body, token);
  }

  private async healthy(): Promise<boolean> {
    try {
      const res = await request(`${this.endpoint}/health`, { headersTimeout: 1000, bodyTimeout: 1000, dispatcher: this.dispatcher });
      const text = await res.body.text();
      return res.statusCode === 200 && (JSON.parse(text) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }
}
