/**
 * @module test/helpers/ws
 * The `ws` package (a devDependency without bundled types) with just the typings the tests use.
 */
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';

export interface WsSocket extends EventEmitter {
  readonly readyState: number;
  send(data: string | Buffer, opts?: { binary?: boolean }, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface WsServer extends EventEmitter {
  readonly clients: Set<WsSocket>;
  address(): { port: number } | string;
  close(cb?: (err?: Error) => void): void;
}

interface WsModule {
  new (url: string, opts?: Record<string, unknown>): WsSocket;
  WebSocketServer: new (opts: Record<string, unknown>, cb?: () => void) => WsServer;
  OPEN: number;
  CLOSED: number;
}

const ws = createRequire(import.meta.url)('ws') as WsModule;

export const WebSocket = ws;
export const WebSocketServer = ws.WebSocketServer;
export type { IncomingMessage };
