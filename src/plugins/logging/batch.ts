/**
 * @module plugins/logging/batch
 * The bounded, batching queue behind the logger plugins. The log phase only pushes an already serialised record
 * (never awaits); batches leave when `batchMaxSize` records wait or `flushInterval` has passed since the first of
 * them arrived, one batch at a time, so a slow sink slows only the queue. A batch that fails is retried with
 * exponential backoff up to `retries` times and then given up (counted); while it waits, new records queue up to
 * `maxQueue` and past that are dropped and counted, with a warning at most once per WARN_INTERVAL. Memory is
 * therefore bounded by maxQueue records (each of bounded size: see record.ts) whatever the sink does.
 */
import type { Logger } from 'pino';

/** The batching options the logger plugins share (their config fields of the same names). */
export interface BatchOptions {
  batchMaxSize: number;
  /** Milliseconds a record may wait for a batch to fill. */
  flushInterval: number;
  /** Records held at most, the batch being sent included. */
  maxQueue: number;
  /** Further attempts for a failed batch. */
  retries: number;
  /** Milliseconds before the first retry; doubled for each next one, up to MAX_RETRY_DELAY. */
  retryDelay: number;
}

/** Longest wait between two attempts of a batch. */
export const MAX_RETRY_DELAY = 30_000;
/** Warnings about dropped records or failing batches are logged at most this often (ms). */
export const WARN_INTERVAL = 10_000;

/** A sink's refusal that retrying will not fix (a 400 from a collector): the batch is given up at once. */
export class BatchRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchRefused';
  }
}

/** A failure worth retrying whose message is safe to log as the reason ("status 503"). */
export class BatchFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchFailed';
  }
}

/** Delivers one batch of serialised records; rejects when they were not delivered. */
export type SendBatch = (records: string[]) => Promise<void>;

/** Counters of one queue since it was made (it lives across config reloads). */
export interface BatchStats {
  /** Records delivered. */
  sent: number;
  /** Batches delivered. */
  batches: number;
  /** Records not queued: the queue was full (or closed). */
  dropped: number;
  /** Records given up after their batch failed every attempt (or was refused). */
  failed: number;
  /** Attempts that failed and were retried. */
  retried: number;
}

/** A short, secret-free reason for a failure, for the log: an error code or class, never a message. */
export function failureReason(err: unknown): string {
  if (err instanceof BatchRefused || err instanceof BatchFailed) return err.message;
  const e = err as { code?: unknown; name?: unknown } | null;
  if (e && typeof e.code === 'string') return e.code;
  if (e && typeof e.name === 'string') return e.name;
  return 'unknown';
}

export class BatchQueue {
  readonly stats: BatchStats = { sent: 0, batches: 0, dropped: 0, failed: 0, retried: 0 };
  private records: string[] = [];
  /** Records at the head of `records` that form the batch being sent or waiting for its retry. */
  private batchSize = 0;
  /** The batch is on its way to the sink (as opposed to waiting for a retry). */
  private onWire = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private droppedUnreported = 0;
  private lastDropWarn = -Infinity;
  private lastFailWarn = -Infinity;
  private lostUnreported = 0;

  constructor(
    private opts: BatchOptions,
    private readonly send: SendBatch,
    private readonly logger: Logger,
    /** Names the sink in log lines (a file path, a collector's origin: never a secret). */
    private readonly what: Record<string, unknown>,
    private readonly now: () => number = Date.now,
  ) {}

  /** A config reload: the new options apply from the next batch. */
  configure(opts: BatchOptions): void {
    this.opts = opts;
  }

  /** Records held now, the batch being sent included. */
  get queued(): number {
    return this.records.length;
  }

  /** Queue one serialised record. Never throws, never waits. HOT PATH (log phase). */
  push(record: string): void {
    if (this.closed) {
      // A record from a request that was still in flight when its config went away.
      this.stats.dropped++;
      return;
    }
    if (this.records.length >= this.opts.maxQueue) {
      this.stats.dropped++;
      this.droppedUnreported++;
      const t = this.now();
      if (t - this.lastDropWarn >= WARN_INTERVAL) {
        this.lastDropWarn = t;
        this.logger.warn({ ...this.what, dropped: this.droppedUnreported, maxQueue: this.opts.maxQueue }, 'log queue full: records dropped');
        this.droppedUnreported = 0;
      }
      return;
    }
    this.records.push(record);
    if (this.batchSize === 0) this.schedule();
  }

  /** With no batch under way: send at once when a batch is full, else arm the flush timer. */
  private schedule(): void {
    if (this.closed || this.batchSize > 0 || this.records.length === 0) return;
    if (this.records.length >= this.opts.batchMaxSize) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.startBatch();
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(this.onTimer, this.opts.flushInterval);
      this.timer.unref();
    }
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.batchSize === 0 && this.records.length > 0) this.startBatch();
  };

  private startBatch(): void {
    this.batchSize = Math.min(this.records.length, this.opts.batchMaxSize);
    this.attempt = 0;
    this.attemptBatch();
  }

  private attemptBatch(): void {
    this.timer = null;
    const batch = this.records.slice(0, this.batchSize);
    this.onWire = true;
    let p: Promise<void>;
    try {
      p = this.send(batch);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(this.onSent, this.onFailed);
  }

  private readonly onSent = (): void => {
    this.onWire = false;
    if (this.batchSize === 0) return; // taken by close()
    this.stats.sent += this.batchSize;
    this.stats.batches++;
    this.finishBatch();
  };

  private readonly onFailed = (err: unknown): void => {
    this.onWire = false;
    if (this.batchSize === 0) return; // taken by close()
    const refused = err instanceof BatchRefused;
    if (!refused && !this.closed && this.attempt < this.opts.retries) {
      this.attempt++;
      this.stats.retried++;
      this.warnFailure(err, 'log batch failed: will retry');
      // Exponential backoff with up to 25% jitter, so the workers' queues do not all come back at once.
      const base = Math.min(this.opts.retryDelay * 2 ** (this.attempt - 1), MAX_RETRY_DELAY);
      this.timer = setTimeout(() => this.attemptBatch(), base + Math.random() * base * 0.25);
      this.timer.unref();
      return;
    }
    this.stats.failed += this.batchSize;
    this.warnFailure(err, 'log batch given up: records lost', this.batchSize);
    this.finishBatch();
  };

  private warnFailure(err: unknown, msg: string, lost = 0): void {
    this.lostUnreported += lost;
    const t = this.now();
    // A sink that stays down fails every batch: one line per interval says so, with what was lost since the last.
    if (t - this.lastFailWarn < WARN_INTERVAL) return;
    this.lastFailWarn = t;
    this.logger.warn({ ...this.what, reason: failureReason(err), lost: this.lostUnreported, failedTotal: this.stats.failed }, msg);
    this.lostUnreported = 0;
  }

  private finishBatch(): void {
    this.records.splice(0, this.batchSize);
    this.batchSize = 0;
    this.attempt = 0;
    this.schedule();
  }

  /**
   * Stop: no more batches, later pushes are dropped. Returns the records not on their way to the sink (those
   * queued and a batch waiting for its retry), for the owner to write out one last time.
   */
  stop(): string[] {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    let rest: string[];
    if (this.onWire) {
      // The batch on the wire settles on its own; only what follows it is handed back.
      rest = this.records.slice(this.batchSize);
      this.records = this.records.slice(0, this.batchSize);
    } else {
      rest = this.records;
      this.records = [];
      this.batchSize = 0;
    }
    return rest;
  }

  /** Whether a batch is on its way to the sink right now. */
  get sending(): boolean {
    return this.onWire;
  }
}
