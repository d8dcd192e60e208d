import { HeadError } from './head.js';

/**
 * Where a message body ends, for bodies that pass through the proxy as bytes (never decoded or
 * re-framed). `advance` is fed each chunk of bytes in order and returns how many of them belong to
 * the body; the body is complete when `done` is true. Bytes past it belong to the next message
 * (pipelining).
 */
export interface BodyTracker {
  done: boolean;
  advance(buf: Buffer, from: number, to: number): number;
}

/** A body of a known Content-Length. */
export class LengthBody implements BodyTracker {
  done: boolean;
  constructor(private remaining: number) {
    this.done = remaining === 0;
  }
  /** Starts over for a body of `remaining` bytes (one tracker serves a connection's messages). */
  reset(remaining: number): this {
    this.remaining = remaining;
    this.done = remaining === 0;
    return this;
  }
  advance(_buf: Buffer, from: number, to: number): number {
    const n = Math.min(this.remaining, to - from);
    this.remaining -= n;
    if (this.remaining === 0) this.done = true;
    return n;
  }
}

/** A body that ends when the connection does (a response without framing; HTTP/1.0 style). */
export class UntilCloseBody implements BodyTracker {
  done = false;
  advance(_buf: Buffer, from: number, to: number): number {
    return to - from;
  }
}

const enum S {
  Size,
  /** Whitespace after the size (BWS): only more of it, `;` or CR may follow. */
  SizeBws,
  SizeExt,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerLf,
  FinalLf,
}

/** Sizes past 2^48 are refused: no honest chunk is that large, and it keeps the sum exact. */
const MAX_SIZE_DIGITS = 12;

/**
 * RFC 9112 §7.1 chunked framing, strictly: hex sizes (at most 12 digits), extensions skipped,
 * CRLF everywhere (a bare LF is refused — a lenient parser behind would see other boundaries),
 * trailers passed through. A state machine over bytes, so it resumes across any split.
 */
export class ChunkedBody implements BodyTracker {
  done = false;
  private state = S.Size;
  private size = 0;
  private digits = 0;
  private remaining = 0;

  constructor(private readonly status = 400) {}

  advance(buf: Buffer, from: number, to: number): number {
    let i = from;
    while (i < to && !this.done) {
      if (this.state === S.Data) {
        const n = Math.min(this.remaining, to - i);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.state = S.DataCr;
        continue;
      }
      const c = buf[i++]!;
      switch (this.state) {
        case S.Size: {
          const v = hex(c);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) this.fail('chunk size too large');
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) this.fail('invalid chunk size');
          else if (c === 0x0d) this.state = S.SizeLf;
          else if (c === 0x3b) this.state = S.SizeExt;
          else if (c === 0x20 || c === 0x09) this.state = S.SizeBws;
          else this.fail('invalid chunk size');
          break;
        }
        case S.SizeBws:
          // `5 ;ext` is allowed (BWS); `5 a` is not: a parser behind might read it as size 0x5a.
          if (c === 0x3b) this.state = S.SizeExt;
          else if (c === 0x0d) this.state = S.SizeLf;
          else if (c !== 0x20 && c !== 0x09) this.fail('invalid chunk size');
          break;
        case S.SizeExt:
          if (c === 0x0d) this.state = S.SizeLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) this.fail('invalid chunk extension');
          break;
        case S.SizeLf:
          if (c !== 0x0a) this.fail('expected LF after chunk size');
          if (this.size === 0) this.state = S.TrailerStart;
          else {
            this.remaining = this.size;
            this.state = S.Data;
          }
          this.size = 0;
          this.digits = 0;
          break;
        case S.DataCr:
          if (c !== 0x0d) this.fail('expected CRLF after chunk data');
          this.state = S.DataLf;
          break;
        case S.DataLf:
          if (c !== 0x0a) this.fail('expected CRLF after chunk data');
          this.state = S.Size;
          break;
        case S.TrailerStart:
          if (c === 0x0d) this.state = S.FinalLf;
          // A trailer line starts with its name: not whitespace (obs-fold), not a colon, no CTL.
          else if (c <= 0x20 || c === 0x3a || c === 0x7f) this.fail('invalid trailer');
          else this.state = S.TrailerLine;
          break;
        case S.TrailerLine:
          if (c === 0x0d) this.state = S.TrailerLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) this.fail('invalid trailer');
          break;
        case S.TrailerLf:
          if (c !== 0x0a) this.fail('expected LF in trailer');
          this.state = S.TrailerStart;
          break;
        case S.FinalLf:
          if (c !== 0x0a) this.fail('expected LF at end of chunked body');
          this.done = true;
          break;
      }
    }
    return i - from;
  }

  private fail(message: string): never {
    throw new HeadError(this.status, message);
  }
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
