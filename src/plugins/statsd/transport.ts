/**
 * @module plugins/statsd/transport
 * The UDP side of the statsd plugin. A UdpTarget is one connected UDP socket to one StatsD host and port, shared
 * by every statsd config of the process that names them and kept across config reloads (plugin state). A Batcher
 * packs metric lines into datagrams of at most maxPacketSize bytes, separated by "\n", and hands each full
 * datagram to its target; what is left is sent when the flush interval ends.
 *
 * Nothing here ever throws into the request path or waits on the network: sends are fire and forget, failures are
 * counted and logged at most once a minute, and every queue is bounded (what does not fit is dropped and counted).
 */
import dgram from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';

/** Resolves a host name to its addresses (dns.lookup with all: true; tests inject their own). */
export type Lookup = (host: string) => Promise<Array<{ address: string; family: number }>>;

const systemLookup: Lookup = (host) => dnsLookup(host, { all: true });

/** A host name is resolved again this often, so a StatsD server that moves is followed without a reload. */
export const REFRESH_MS = 60_000;
/** First retry after a failed lookup or connect; doubles up to REFRESH_MS. */
const RETRY_MIN_MS = 1000;
/** At most one warning per target in this long, with the number of failures since the last one. */
export const LOG_INTERVAL_MS = 60_000;
/** Datagrams held while the socket is not connected yet (first lookup, reconnect); more are dropped. */
export const MAX_PENDING = 256;
/** Datagrams queued in the socket (the kernel buffer is full); more are dropped rather than piled up in memory. */
export const MAX_QUEUED_SENDS = 1024;

/** What one target has done in this process, for the `stats` control action and tests. */
export interface TargetStats {
  /** Datagrams handed to the socket. */
  datagrams: number;
  /** Their bytes. */
  bytes: number;
  /** Send failures: errors of sends, ICMP errors reported on the socket (ECONNREFUSED: nothing listens). */
  sendErrors: number;
  /** Failed lookups of the host name and failed connects. */
  resolveErrors: number;
  /** Datagrams dropped: queues full, or the target closed. */
  dropped: number;
  /** Metric lines longer than maxPacketSize, never sent. */
  tooLarge: number;
  /** Code of the last failure (ECONNREFUSED, ENOTFOUND...), or null. */
  lastError: string | null;
}

function noop(): void {}

function codeOf(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : 'EUNKNOWN';
}

/** One connected UDP socket to `host:port`, re-resolved every REFRESH_MS when `host` is a name. */
export class UdpTarget {
  /** Counters for /metrics (gatehouse_plugin_events_total). */
  metrics(): Array<{ event: string; value: number; labels: Record<string, string> }> {
    const labels = { target: this.target };
    return [{ event: 'datagrams_sent', value: this.stats.datagrams, labels }, { event: 'send_errors', value: this.stats.sendErrors, labels }, { event: 'datagrams_dropped', value: this.stats.dropped, labels }];
  }

  readonly stats: TargetStats = { datagrams: 0, bytes: 0, sendErrors: 0, resolveErrors: 0, dropped: 0, tooLarge: 0, lastError: null };
  /** The address the socket is connected (or connecting) to, null before the first lookup answers. */
  address: string | null = null;
  private socket: dgram.Socket | null = null;
  private connected = false;
  private pending: Buffer[] = [];
  private closing = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  private failuresSinceLog = 0;
  private lastLogAt = -Infinity;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly logger: Logger,
    private readonly lookup: Lookup = systemLookup,
    private readonly now: () => number = Date.now,
  ) {
    if (isIP(host) !== 0) this.open(host);
    else void this.resolve();
  }

  get target(): string {
    return isIP(this.host) === 6 ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** Whether datagrams go straight to the socket (false while looking up or connecting). */
  get ready(): boolean {
    return this.connected;
  }

  /** Send one datagram, fire and forget. Never throws. */
  send(buf: Buffer): void {
    if (this.closed) {
      this.stats.dropped++;
      return;
    }
    const socket = this.socket;
    if (socket === null || !this.connected) {
      if (this.pending.length < MAX_PENDING) this.pending.push(buf);
      else this.stats.dropped++;
      return;
    }
    if (socket.getSendQueueCount() >= MAX_QUEUED_SENDS) {
      this.stats.dropped++;
      return;
    }
    try {
      socket.send(buf, this.onSent);
      this.stats.datagrams++;
      this.stats.bytes += buf.length;
    } catch (e) {
      this.failed('send', codeOf(e));
    }
  }

  /** A metric line longer than maxPacketSize was dropped. */
  lineTooLarge(): void {
    this.stats.tooLarge++;
    this.report('ETOOLARGE');
  }

  /** Plugin state is dropped: stop timers and close the socket once the current turn's sends are out. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    // Batchers closed in the same sweep flush into this target: let those sends go first.
    setImmediate(() => {
      this.closed = true;
      this.pending = [];
      this.connected = false;
      this.closeSocket(this.socket);
      this.socket = null;
    }).unref();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private readonly onSent = (err: Error | null): void => {
    if (err) this.failed('send', codeOf(err));
  };

  /** Errors the socket reports on its own: ICMP port unreachable comes back as ECONNREFUSED on a connected socket. */
  private readonly onError = (err: Error): void => {
    this.failed('send', codeOf(err));
  };

  private async resolve(): Promise<void> {
    this.timer = null;
    if (this.closing) return;
    let list: Array<{ address: string; family: number }>;
    try {
      list = await this.lookup(this.host);
    } catch (e) {
      if (this.closing) return;
      this.failed('resolve', codeOf(e));
      this.retry(() => void this.resolve());
      return;
    }
    if (this.closing) return;
    // StatsD servers traditionally listen on IPv4 only: prefer an IPv4 address when the name has both.
    const pick = list.find((a) => a.family === 4) ?? list[0];
    if (pick === undefined) {
      this.failed('resolve', 'ENOTFOUND');
      this.retry(() => void this.resolve());
      return;
    }
    this.retryMs = RETRY_MIN_MS;
    if (pick.address !== this.address || this.socket === null) this.open(pick.address);
    this.timer = setTimeout(() => void this.resolve(), REFRESH_MS).unref();
  }

  private retry(fn: () => void): void {
    if (this.closing) return;
    this.timer = setTimeout(fn, this.retryMs).unref();
    this.retryMs = Math.min(this.retryMs * 2, REFRESH_MS);
  }

  /** Connect a new socket to `address`; the previous one, if any, is closed once its sends are out. */
  private open(address: string): void {
    const old = this.socket;
    this.connected = false;
    this.address = address;
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({ type: isIP(address) === 6 ? 'udp6' : 'udp4' });
    } catch (e) {
      this.socket = null;
      this.failed('resolve', codeOf(e));
      this.retry(() => this.reopen());
      return;
    }
    this.socket = socket;
    socket.on('error', this.onError);
    // Metrics must never keep a process alive that is otherwise done.
    socket.unref();
    if (old !== null) setImmediate(() => this.closeSocket(old)).unref();
    // Connected: the kernel routes once, and ICMP errors (nothing listening) are reported instead of lost.
    const onConnect = (err?: Error) => {
      if (this.socket !== socket || this.closing) return;
      if (err) {
        this.socket = null;
        this.closeSocket(socket);
        this.failed('resolve', codeOf(err));
        this.retry(() => this.reopen());
        return;
      }
      this.connected = true;
      this.retryMs = RETRY_MIN_MS;
      const queued = this.pending;
      this.pending = [];
      for (const buf of queued) this.send(buf);
    };
    try {
      socket.connect(this.port, address, onConnect as () => void);
    } catch (e) {
      onConnect(e as Error);
    }
  }

  private reopen(): void {
    this.timer = null;
    if (this.closing) return;
    if (isIP(this.host) !== 0) this.open(this.host);
    else void this.resolve();
  }

  private closeSocket(socket: dgram.Socket | null): void {
    if (socket === null) return;
    try {
      socket.close();
    } catch {
      /* already closed */
    }
    // Late errors of a closed socket must still find a listener.
    socket.on('error', noop);
  }

  private failed(kind: 'send' | 'resolve', code: string): void {
    if (kind === 'send') this.stats.sendErrors++;
    else this.stats.resolveErrors++;
    this.report(code);
  }

  /** Log at most once per LOG_INTERVAL_MS, with how many failures there were since the last line. */
  private report(code: string): void {
    this.stats.lastError = code;
    this.failuresSinceLog++;
    const now = this.now();
    if (now - this.lastLogAt < LOG_INTERVAL_MS) return;
    this.lastLogAt = now;
    const failures = this.failuresSinceLog;
    this.failuresSinceLog = 0;
    try {
      this.logger.warn(
        { target: this.target, error: code, failures },
        code === 'ETOOLARGE'
          ? 'statsd metric lines longer than maxPacketSize were dropped (logged at most once a minute)'
          : 'statsd metrics could not be sent (logged at most once a minute; requests are not affected)',
      );
    } catch {
      /* logging must not break anything */
    }
  }
}

/**
 * Packs metric lines into datagrams for one target. Lines are ASCII (names and tags are sanitised, values are
 * numbers), so a line's length is its size in bytes and it is written into the packet buffer as latin1.
 */
export class Batcher {
  private buf: Buffer;
  private used = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private closed = false;

  constructor(
    readonly target: UdpTarget,
    readonly maxPacketSize: number,
    /** Milliseconds a line may wait for its datagram to fill; 0: sent at the end of the current event loop turn. */
    readonly flushInterval: number,
  ) {
    this.buf = Buffer.allocUnsafe(maxPacketSize);
  }

  /** HOT PATH: queue one metric line (no "\n"). A datagram that is full goes out at once. */
  add(line: string): void {
    const len = line.length;
    if (len > this.maxPacketSize) {
      this.target.lineTooLarge();
      return;
    }
    if (this.closed) {
      this.target.stats.dropped++;
      return;
    }
    if (this.used > 0 && this.used + 1 + len > this.maxPacketSize) this.seal();
    if (this.used > 0) this.buf[this.used++] = 10;
    this.buf.write(line, this.used, len, 'latin1');
    this.used += len;
    if (this.timer === null) this.arm();
  }

  /** Send what is queued now. */
  flush(): void {
    this.timer = null;
    if (this.used > 0) this.seal();
  }

  /** Plugin state is dropped: send what is left. */
  close(): void {
    if (this.closed) return;
    if (this.timer !== null) {
      if (this.flushInterval === 0) clearImmediate(this.timer as NodeJS.Immediate);
      else clearTimeout(this.timer as NodeJS.Timeout);
    }
    this.flush();
    this.closed = true;
  }

  private readonly onTimer = (): void => this.flush();

  private arm(): void {
    this.timer = this.flushInterval === 0 ? setImmediate(this.onTimer).unref() : setTimeout(this.onTimer, this.flushInterval).unref();
  }

  private seal(): void {
    // A copy of the used bytes (small ones come from Node's pool); the packet buffer is reused.
    const out = Buffer.allocUnsafe(this.used);
    this.buf.copy(out, 0, 0, this.used);
    this.used = 0;
    this.target.send(out);
  }
}
