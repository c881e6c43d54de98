/**
 * @module test/helpers/redis
 * A real redis-server for tests, on a free loopback port, with no persistence. Outside CI a machine without
 * redis-server skips the tests that need it; under CI (CI=true) they fail instead, since CI installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { freePort, sleep } from './cli.js';
import { skipUnlessPresent } from './required.js';

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Skip reason for node:test, or false when the tests can run (never skips under CI). */
export function redisSkip(): string | false {
  return skipUnlessPresent(redisAvailable() ? null : 'redis-server is not installed (Debian package redis-server)');
}

export class TestRedis {
  private child: ChildProcess | null = null;
  private constructor(readonly port: number) {}

  static async start(port?: number): Promise<TestRedis> {
    const r = new TestRedis(port ?? (await freePort()));
    await r.start();
    return r;
  }

  /** Start (again) on the same port. */
  async start(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--enable-debug-command', 'local'], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + 10_000;
    while (!(await this.ping())) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${this.port}`);
      await sleep(25);
    }
  }

  /** Stop it (SIGKILL: as abrupt as a crash) and wait until the port refuses connections. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await exited;
  }

  /** A raw RESP command, for checks the tests make on the server itself. */
  command(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port: this.port });
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        out += d;
        if (out.endsWith('\r\n')) {
          s.end();
          resolve(out);
        }
      });
      s.on('error', reject);
      s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
  }

  private async ping(): Promise<boolean> {
    try {
      return (await this.command('PING')).startsWith('+PONG');
    } catch {
      return false;
    }
  }
}
