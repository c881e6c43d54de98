/**
 * @module plugins/file-logger
 * Appends a JSON access record of every request, one per line, to a file. The log phase only serialises the
 * record and queues it; batches are written in the background, each as one write() to a file opened once with
 * O_APPEND, so several worker processes appending to the same file never interleave partial lines. The open file
 * and its queue live in plugin state keyed by the file's path (shared by every config that names it) and survive
 * reloads; the `reopen` control action (POST /plugins/file-logger/reopen on the status port) reopens the files
 * after logrotate moved them. A file that cannot be opened or written is reported once per cause and its records
 * are counted as failed: it never fails a request or the worker.
 */
import { close as fsClose, closeSync, open as fsOpen, openSync, write as fsWrite, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { definePlugin, type PluginControlEnv } from '../../dataplane/plugins/types.js';
import { BatchQueue, failureReason, type BatchOptions, type BatchStats } from '../logging/batch.js';
import { checkRecordOptions, compileRecord, RecordOptions } from '../logging/record.js';
import { PRIORITIES } from '../priorities.js';

const Config = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      maxLength: 4096,
      pattern: '^[^\\x00]+$',
      description: 'The file records are appended to, one JSON object per line; created (mode 0640) when missing. A relative path is relative to the gateway\'s working directory.',
    }),
    batchMaxSize: Type.Integer({ minimum: 1, maximum: 10000, default: 100, description: 'Records per write at most; a full batch is written at once.' }),
    flushInterval: Type.Integer({
      minimum: 1,
      maximum: 600000,
      default: 1000,
      description: 'Milliseconds a record waits for its batch to fill before the batch is written anyway.',
    }),
    maxQueue: Type.Integer({
      minimum: 1,
      maximum: 1000000,
      default: 10000,
      description: 'Records this worker process holds for the file at most (the batch being written included); past it new records are dropped and counted.',
    }),
    ...RecordOptions,
  },
  { additionalProperties: false, description: 'file-logger config.' },
);
type Config = Static<typeof Config>;

/** Mode of a log file the plugin creates: records hold client addresses, so not world-readable. */
const FILE_MODE = 0o640;

/** What the `stats` control action reports for one file. */
export interface FileLoggerStats extends BatchStats {
  file: string;
  queued: number;
  /** Whether the file is open now. */
  open: boolean;
  /** Times the file was reopened (the reopen action). */
  reopens: number;
  /** The last error opening or writing the file (a code such as EACCES), or null once it works again. */
  error: string | null;
}

function batchOptions(c: Config): BatchOptions {
  // A write that failed is not retried: the same file would most likely fail the same way again.
  return { batchMaxSize: c.batchMaxSize, flushInterval: c.flushInterval, maxQueue: c.maxQueue, retries: 0, retryDelay: 1 };
}

function noop(): void {}

function openFile(file: string): Promise<number> {
  return new Promise((res, rej) => fsOpen(file, 'a', FILE_MODE, (err, fd) => (err ? rej(err) : res(fd))));
}

function closeFile(fd: number): Promise<void> {
  return new Promise((res) => fsClose(fd, () => res()));
}

/** Write all of `buf` at the end of the file (a short write, rare on a regular file, continues where it stopped). */
function writeAll(fd: number, buf: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    const step = (off: number) => {
      fsWrite(fd, buf, off, buf.length - off, null, (err, n) => {
        if (err) return rej(err);
        if (off + n < buf.length) step(off + n);
        else res();
      });
    };
    step(0);
  });
}

function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, null);
}

/** One log file: its descriptor, its queue, and a chain that runs opens, writes and reopens one after another. */
export class FileSink {
  /** Counters for /metrics (gatehouse_plugin_events_total). */
  metrics(): Array<{ event: string; value: number; labels: Record<string, string> }> {
    const labels = { file: this.file };
    return [{ event: 'records_sent', value: this.queue.stats.sent, labels }, { event: 'records_dropped', value: this.queue.stats.dropped, labels }, { event: 'records_failed', value: this.queue.stats.failed, labels }];
  }

  readonly queue: BatchQueue;
  private fd: number | null = null;
  /** Operations on the file run in order: a reopen asked for lands between two batches, never inside one. */
  private ops: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;
  private reopens = 0;
  /** The last error reported (a code), so a file that stays unwritable is reported once per cause. */
  private lastError: string | null = null;

  constructor(
    readonly file: string,
    config: Config,
    private readonly logger: Logger,
  ) {
    this.queue = new BatchQueue(batchOptions(config), (records) => this.write(records), logger, { file });
    // Opened at once, so a path that cannot be written is reported when the config loads, not at the first record.
    this.run(() => this.open().then(noop, noop)).catch(noop);
  }

  configure(config: Config): void {
    this.queue.configure(batchOptions(config));
  }

  private run(op: () => Promise<void>): Promise<void> {
    this.pending++;
    const p = this.ops.then(op).finally(() => {
      this.pending--;
    });
    this.ops = p.catch(noop);
    return p;
  }

  private report(err: unknown): void {
    const reason = failureReason(err);
    if (reason === this.lastError) return;
    this.lastError = reason;
    this.logger.error({ file: this.file, reason }, 'file-logger cannot write its file: records are dropped until it can');
  }

  private async open(): Promise<number> {
    if (this.fd !== null) return this.fd;
    try {
      this.fd = await openFile(this.file);
    } catch (err) {
      this.report(err);
      throw err;
    }
    if (this.lastError !== null) {
      this.lastError = null;
      this.logger.info({ file: this.file }, 'file-logger writes its file again');
    }
    return this.fd;
  }

  /** One batch, one write. */
  private write(records: string[]): Promise<void> {
    const buf = Buffer.from(`${records.join('\n')}\n`);
    return this.run(async () => {
      const fd = await this.open();
      try {
        await writeAll(fd, buf);
      } catch (err) {
        this.report(err);
        // Open it afresh for the next batch (a file system remounted, a descriptor gone bad).
        if (this.fd === fd) {
          this.fd = null;
          await closeFile(fd);
        }
        throw err;
      }
    });
  }

  /** Close the file and open it again by its path (after logrotate renamed it). Batches queued later go to the new file. */
  reopen(): void {
    if (this.closed) return;
    this.run(async () => {
      this.reopens++;
      if (this.fd !== null) {
        const fd = this.fd;
        this.fd = null;
        await closeFile(fd);
      }
      await this.open().catch(noop);
    }).catch(noop);
  }

  stats(): FileLoggerStats {
    return { file: this.file, queued: this.queue.queued, open: this.fd !== null, reopens: this.reopens, error: this.lastError, ...this.queue.stats };
  }

  /**
   * The state store drops the file (no config names it any more) or the gateway stops: write what is left now,
   * synchronously, as the process may exit right after; the descriptor is closed once operations under way end.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const rest = this.queue.stop();
    if (rest.length > 0) {
      const buf = Buffer.from(`${rest.join('\n')}\n`);
      // O_APPEND makes a second descriptor safe to append with while a batch may still be on its way.
      let own: number | null = null;
      try {
        own = this.fd === null ? openSync(this.file, 'a', FILE_MODE) : null;
        writeAllSync(own ?? this.fd!, buf);
        this.queue.stats.sent += rest.length;
        this.queue.stats.batches++;
      } catch (err) {
        this.queue.stats.failed += rest.length;
        this.report(err);
      } finally {
        if (own !== null) {
          try {
            closeSync(own);
          } catch {
            /* nothing left to do */
          }
        }
      }
    }
    const closeFd = () => {
      if (this.fd !== null) {
        const fd = this.fd;
        this.fd = null;
        try {
          closeSync(fd);
        } catch {
          /* already gone */
        }
      }
    };
    // Closing a descriptor a pending write still uses could let a newly opened file take its number.
    if (this.pending === 0) closeFd();
    else void this.ops.then(closeFd);
  }
}

function sinks(env: PluginControlEnv): FileSink[] {
  return env
    .stateKeys()
    .map((k) => env.state<FileSink>(k))
    .filter((s): s is FileSink => s instanceof FileSink);
}

export default definePlugin<Config>({
  name: 'file-logger',
  version: '1.0.0',
  priority: PRIORITIES['file-logger'],
  description: 'Appends a JSON access record of every request, one per line, to a file in batches; reopened on request for log rotation.',
  schema: Config,
  scopes: ['global', 'service', 'route', 'consumer'],
  check(config) {
    const problems = checkRecordOptions(config);
    if (config.path.endsWith('/') || config.path.endsWith('/.') || config.path === '.' || config.path.endsWith('/..') || config.path === '..') {
      problems.push(['path', 'names a directory, not a file']);
    }
    if (config.maxQueue < config.batchMaxSize) problems.push(['maxQueue', 'must be at least batchMaxSize']);
    return problems;
  },
  create(config, env) {
    const file = resolve(config.path);
    // One descriptor and queue per file, whatever the number of configs naming it.
    const sink = env.state(file, () => new FileSink(file, config, env.logger));
    sink.configure(config);
    const queue = sink.queue;
    const record = compileRecord(config, 'file-logger');
    return {
      ...(record.captureHead ? { responseHeaders: record.captureHead } : {}),
      log(ctx) {
        queue.push(JSON.stringify(record.build(ctx)));
      },
    };
  },
  control: {
    /** Reopen every file of this worker (after logrotate): `POST /plugins/file-logger/reopen`. */
    reopen(_args, env) {
      const list = sinks(env);
      for (const s of list) s.reopen();
      return { reopened: list.map((s) => s.file) };
    },
    /** Queue and file counters of this worker: `POST /plugins/file-logger/stats`. */
    stats(_args, env) {
      return sinks(env).map((s) => s.stats());
    },
  },
});
