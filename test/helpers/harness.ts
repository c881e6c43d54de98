/**
 * @module test/helpers/harness
 * Per-file test scaffolding: real upstreams and in-process gateways that are closed after the file's tests.
 */
import { after } from 'node:test';
import { startInProcessGateway, type InProcessGateway } from '../../src/process/in-process.js';
import { startUpstream, type Handler, type TestUpstream } from './upstream.js';

export interface Harness {
  /** A real upstream on 127.0.0.1, closed after the tests. */
  upstream(handler?: Handler, opts?: { readBody?: boolean }): Promise<TestUpstream>;
  /** An in-process gateway on free ports, closed after the tests. */
  gateway(config: unknown, settings?: Record<string, unknown>, opts?: { statusServer?: boolean }): Promise<InProcessGateway>;
  /** Run `fn` after the tests (last registered, first run). */
  defer(fn: () => Promise<void> | void): void;
}

export function harness(): Harness {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  return {
    async upstream(handler, opts) {
      const u = await startUpstream(handler, opts);
      cleanups.push(() => u.close());
      return u;
    },
    async gateway(config, settings, opts) {
      const g = await startInProcessGateway({ config, settings, statusServer: opts?.statusServer });
      cleanups.push(() => g.close());
      return g;
    },
    defer(fn) {
      cleanups.push(fn);
    },
  };
}
