import type { Socket } from 'node:net';

/** The peer closed the connection (or it failed) while a read waited. */
export class FeedClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeedClosedError';
  }
}

/**
 * Pull-style reads over a socket for the command phase: `read(n)` exact bytes, `readSome()`
 * whatever came next. Bytes buffered here are capped (`maxBuffered`): a peer sending faster
 * than the phase consumes is an error. `detach()` hands the socket back for piping.
 */
export class SocketFeed {
  private queue: Buffer[] = [];
  private queued = 0;
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (d: Buffer): void => {
    this.queue.push(d);
    this.queued += d.length;
    if (this.queued > this.maxBuffered) this.fail(new FeedClosedError(`more than ${this.maxBuffered} bytes buffered`));
    this.wake();
  };
  private readonly onEnd = (): void => this.fail(new FeedClosedError('connection closed by peer'));
  private readonly onError = (err: Error): void => this.fail(new FeedClosedError(`socket error: ${err.message}`));

  constructor(
    private readonly socket: Socket,
    private readonly maxBuffered: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private fail(err: Error): void {
    if (!this.ended) this.ended = err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async more(): Promise<void> {
    if (this.ended) throw this.ended;
    await new Promise<void>((resolve) => (this.waiter = resolve));
    if (this.ended && this.queued === 0) throw this.ended;
  }

  /** Exactly `n` bytes. */
  async read(n: number): Promise<Buffer> {
    while (this.queued < n) {
      if (this.ended) throw this.ended;
      await this.more();
    }
    const all = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.queue = rest.length > 0 ? [rest] : [];
    this.queued = rest.length;
    return out;
  }

  /** Whatever bytes are buffered, waiting for some if none are. */
  async readSome(): Promise<Buffer> {
    while (this.queued === 0) await this.more();
    return this.takeBuffered();
  }

  /** Everything buffered right now (possibly empty), without waiting. */
  takeBuffered(): Buffer {
    const all = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
    this.queue = [];
    this.queued = 0;
    return all;
  }

  /** Stops listening; returns what was buffered. The caller owns the socket's events again. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    this.fail(new FeedClosedError('detached'));
    return this.takeBuffered();
  }
}
