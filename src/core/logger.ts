/**
 * @module core/logger
 * JSON-lines logging on stdout (pino). One root logger per process; modules take children.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

let root: Logger | undefined;

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  root = pino({
    level: options.level ?? 'info',
    base: { pid: process.pid, ...(options.name ? { name: options.name } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.password', '*.key', '*.secret', '*.token', '*.authorization'], censor: '[redacted]' },
  });
  return root;
}

export function logger(): Logger {
  return root ?? createLogger();
}
