/**
 * Strict HTTP/1.1 message heads (RFC 9112), parsed by hand over bytes.
 *
 * Why by hand and not node:http / llhttp: the proxy's hot path. Measured on this project's machine
 * (issue 14), node:http in front of undici reaches about a third of HAProxy's throughput, a proxy
 * that reads the heads itself from raw `net` sockets about 0.8–0.95×. The proxy needs only the
 * head (framing, routing inputs, hop-by-hop headers): bodies pass through as bytes, unparsed.
 * Headers are kept as offsets into the received bytes, not strings: forwarding copies the lines it
 * keeps as they came, and only the values something asks for become strings (a string per header
 * made the parse of an ordinary response cost ~4 µs; offsets, well under 1 µs).
 *
 * Strictness is the security property: anything two parsers could read differently is refused
 * (request smuggling): Content-Length with Transfer-Encoding, differing Content-Lengths, a
 * Transfer-Encoding other than `chunked`, obsolete line folding, whitespace before a colon, bare CR
 * or LF, control characters in values, a missing or repeated Host.
 */

import { Buffer } from 'node:buffer';

/** Thrown for a malformed head: `status` is what the client gets (400, 431, 501, 505; 502 for responses). */
export class HeadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** tchar (RFC 9110 §5.6.2) as a lookup table: header names and methods are tokens. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

/** Headers the proxy looks at; everything else is `Other`. */
export const enum H {
  Other,
  ContentLength,
  TransferEncoding,
  Connection,
  Host,
  Upgrade,
  SecWebSocketKey,
  KeepAlive,
  ProxyConnection,
  Te,
  Trailer,
  XForwardedFor,
  XForwardedProto,
  XForwardedHost,
  XClientIp,
  Cookie,
  CacheControl,
}

const KNOWN: [string, H][] = [
  ['content-length', H.ContentLength],
  ['transfer-encoding', H.TransferEncoding],
  ['connection', H.Connection],
  ['host', H.Host],
  ['upgrade', H.Upgrade],
  ['sec-websocket-key', H.SecWebSocketKey],
  ['keep-alive', H.KeepAlive],
  ['proxy-connection', H.ProxyConnection],
  ['te', H.Te],
  ['trailer', H.Trailer],
  ['x-forwarded-for', H.XForwardedFor],
  ['x-forwarded-proto', H.XForwardedProto],
  ['x-forwarded-host', H.XForwardedHost],
  ['x-client-ip', H.XClientIp],
  ['cookie', H.Cookie],
  ['cache-control', H.CacheControl],
];
/** Known names by length, as bytes: the kind of a header is found without making its name a string. */
const BY_LENGTH: { bytes: Uint8Array; kind: H }[][] = [];
for (const [name, kind] of KNOWN) (BY_LENGTH[name.length] ??= []).push({ bytes: Buffer.from(name, 'latin1'), kind });

/** ASCII lower-case of byte `c`. */
const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/** Whether buf[start..end) equals the lower-case `name` bytes, ignoring case. */
function sameName(buf: Buffer, start: number, end: number, name: Uint8Array): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (lower(buf[start + i]!) !== name[i]) return false;
  return true;
}

function kindOf(buf: Buffer, start: number, end: number): H {
  const list = BY_LENGTH[end - start];
  if (list === undefined) return H.Other;
  for (const k of list) if (sameName(buf, start, end, k.bytes)) return k.kind;
  return H.Other;
}

/** Header framing facts shared by requests and responses. */
export interface Head {
  /** The bytes the head lies in (the caller keeps them unchanged while the head is used). */
  buf: Buffer;
  /** Offset of the start line in `buf`. */
  start: number;
  /** Offset just past the blank line that ends the head. */
  headEnd: number;
  /** Offset of the first header line (just past the start line). */
  fieldsStart: number;
  /** Per header i: name start, name end, value start, value end, line end (past CRLF). */
  fields: number[];
  kinds: H[];
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** `Connection: close` (or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** Connection tokens other than close/keep-alive/upgrade: more hop-by-hop header names (lower-case). */
  connectionTokens: string[] | undefined;
}

export interface RequestHead extends Head {
  method: string;
  target: string;
  /** 0 or 1 (HTTP/1.0 or HTTP/1.1). */
  minor: number;
  host: string | undefined;
  /** `Upgrade` value when the client asks to switch protocols (`Connection: upgrade`). */
  upgrade: string | undefined;
  /** Whether a `Sec-WebSocket-Key` header is present (seed 004's WebSocket rule). */
  wsKey: boolean;
}

export interface ResponseHead extends Head {
  status: number;
  minor: number;
  /** End of the status line (before its CRLF). */
  statusLineEnd: number;
}

/**
 * Where the head in `buf[from..to)` ends (offset past CRLFCRLF), or -1 when it is not complete.
 * Throws HeadError(`status`) when `maxBytes` pass without an end.
 *
 * A JS loop, not `Buffer.indexOf`: heads are short, and the native call costs more than the scan
 * (measured ≈0.5 µs per request in the proxy). It looks at every 4th byte: a CRLFCRLF spans four,
 * so one of its bytes is always looked at, and only a CR or LF there is checked around. It never
 * reads past `to` (backend reads share a buffer whose later bytes are stale).
 */
export function findHeadEnd(buf: Buffer, from: number, to: number, maxBytes: number, status: number): number {
  for (let p = from + 3; p < to; p += 4) {
    const c = buf[p];
    if (c !== 0x0a && c !== 0x0d) continue;
    for (let j = p - 3 < from ? from : p - 3; j <= p && j + 3 < to; j++) {
      if (buf[j] === 0x0d && buf[j + 1] === 0x0a && buf[j + 2] === 0x0d && buf[j + 3] === 0x0a) {
        if (j + 4 - from > maxBytes) throw new HeadError(status, 'header section too large');
        return j + 4;
      }
    }
  }
  if (to - from > maxBytes) throw new HeadError(status, 'header section too large');
  return -1;
}

/** The value of header `i` as a string. */
export function fieldValue(head: Head, i: number): string {
  return head.buf.latin1Slice(head.fields[i * 5 + 2]!, head.fields[i * 5 + 3]!);
}

/** The name of header `i`, lower-case. */
export function fieldName(head: Head, i: number): string {
  return head.buf.latin1Slice(head.fields[i * 5]!, head.fields[i * 5 + 1]!).toLowerCase();
}

/** Whether buf[start..end) equals `name`, ignoring ASCII case on both sides. */
function sameNameString(buf: Buffer, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (lower(buf[start + i]!) !== lower(name.charCodeAt(i))) return false;
  return true;
}

/** The value of the first header called `name` (any case), if any. */
export function headerValue(head: Head, name: string): string | undefined {
  const f = head.fields;
  for (let i = 0; i < f.length; i += 5) {
    if (sameNameString(head.buf, f[i]!, f[i + 1]!, name)) return head.buf.latin1Slice(f[i + 2]!, f[i + 3]!);
  }
  return undefined;
}

/** The first header of a known kind, if any. */
export function valueOf(head: Head, kind: H): string | undefined {
  const i = head.kinds.indexOf(kind);
  return i === -1 ? undefined : fieldValue(head, i);
}

/** Whether `c` is optional whitespace (SP or HTAB). */
const ows = (c: number | undefined) => c === 0x20 || c === 0x09;

/**
 * A Content-Length value in `buf[start..end)`, read from the bytes (no string): digits, or a list of
 * equal values, which is tolerated (RFC 9112 §6.3); anything else refused.
 */
function parseContentLength(buf: Buffer, start: number, end: number): number {
  let n = -1;
  let i = start;
  for (;;) {
    while (i < end && ows(buf[i])) i++;
    const digits = i;
    let v = 0;
    while (i < end) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      i++;
    }
    if (i === digits || i - digits > 15) throw new HeadError(400, 'invalid content-length');
    while (i < end && ows(buf[i])) i++;
    if (i < end && buf[i] !== 0x2c) throw new HeadError(400, 'invalid content-length');
    if (n !== -1 && v !== n) throw new HeadError(400, 'conflicting content-length');
    n = v;
    if (i >= end) return n;
    i++; // the comma
  }
}

/** Whether `buf[start..end)` is `word` (lower-case ASCII), ignoring case. */
function isWord(buf: Buffer, start: number, end: number, word: Uint8Array): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (lower(buf[start + i]!) !== word[i]) return false;
  return true;
}

const CLOSE = Buffer.from('close');
const KEEP_ALIVE = Buffer.from('keep-alive');
const UPGRADE = Buffer.from('upgrade');

/** The tokens of a Connection header in `buf[start..end)`, read from the bytes: strings only for unusual ones. */
function connectionTokens(buf: Buffer, start: number, end: number, head: Head, facts: FieldFacts): void {
  let i = start;
  while (i < end) {
    while (i < end && (ows(buf[i]) || buf[i] === 0x2c)) i++;
    const from = i;
    while (i < end && buf[i] !== 0x2c) i++;
    let to = i;
    while (to > from && ows(buf[to - 1])) to--;
    if (to === from) continue;
    if (isWord(buf, from, to, CLOSE)) head.close = true;
    else if (isWord(buf, from, to, KEEP_ALIVE)) facts.keepAlive = true;
    else if (isWord(buf, from, to, UPGRADE)) facts.connUpgrade = true;
    else (head.connectionTokens ??= []).push(buf.latin1Slice(from, to).toLowerCase());
  }
}

interface FieldFacts {
  hosts: number;
  upgrade: string | undefined;
  wsKey: boolean;
  connUpgrade: boolean;
  keepAlive: boolean;
}

/** Parses the header lines of `head` (from head.fieldsStart to head.headEnd). */
function parseFields(head: Head, isRequest: boolean): FieldFacts {
  const buf = head.buf;
  const end = head.headEnd - 2; // the blank line's CRLF
  const facts: FieldFacts = { hosts: 0, upgrade: undefined, wsKey: false, connUpgrade: false, keepAlive: false };
  let te: string | undefined;
  let pos = head.fieldsStart;
  while (pos < end) {
    const nameStart = pos;
    let c = buf[pos]!;
    if (c === 0x20 || c === 0x09) throw new HeadError(400, 'obsolete line folding');
    while (TOKEN[c] === 1) c = buf[++pos]!;
    if (c !== 0x3a || pos === nameStart) throw new HeadError(400, pos === nameStart ? 'header line without a name' : 'invalid header name');
    const nameEnd = pos++;
    // OWS, value, OWS, CRLF; no CTL but HTAB in the value (a bare CR or LF is one).
    while (buf[pos] === 0x20 || buf[pos] === 0x09) pos++;
    const valueStart = pos;
    for (;;) {
      c = buf[pos]!;
      if (c === 0x0d) break;
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw new HeadError(400, 'invalid characters in a header value');
      pos++;
    }
    if (buf[pos + 1] !== 0x0a) throw new HeadError(400, 'bare CR in a header');
    let valueEnd = pos;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === 0x20 || buf[valueEnd - 1] === 0x09)) valueEnd--;
    pos += 2;
    const kind = kindOf(buf, nameStart, nameEnd);
    head.fields.push(nameStart, nameEnd, valueStart, valueEnd, pos);
    head.kinds.push(kind);
    switch (kind) {
      case H.ContentLength: {
        const n = parseContentLength(buf, valueStart, valueEnd);
        if (head.contentLength !== -1 && head.contentLength !== n) throw new HeadError(400, 'conflicting content-length');
        head.contentLength = n;
        break;
      }
      case H.TransferEncoding: {
        const v = buf.latin1Slice(valueStart, valueEnd);
        te = te === undefined ? v : `${te}, ${v}`;
        break;
      }
      case H.Connection:
        connectionTokens(buf, valueStart, valueEnd, head, facts);
        break;
      case H.Host:
        facts.hosts++;
        break;
      case H.Upgrade:
        facts.upgrade = buf.latin1Slice(valueStart, valueEnd);
        break;
      case H.SecWebSocketKey:
        facts.wsKey = true;
        break;
    }
  }
  if (te !== undefined) {
    // Only `chunked`, once: other codings would need the proxy to decode to find the end.
    if (te.trim().toLowerCase() !== 'chunked') throw new HeadError(isRequest ? 501 : 502, 'unsupported transfer-encoding');
    if (head.contentLength !== -1) {
      if (isRequest) throw new HeadError(400, 'content-length with transfer-encoding');
      head.contentLength = -1; // a response may carry both; chunked wins (RFC 9112 §6.3)
    }
    head.chunked = true;
  }
  return facts;
}

/** The common methods as constant strings, read from the bytes (no string made per request). */
function methodOf(buf: Buffer, from: number, to: number): string {
  const c = buf[from];
  switch (to - from) {
    case 3:
      if (c === 0x47 && buf[from + 1] === 0x45 && buf[from + 2] === 0x54) return 'GET';
      if (c === 0x50 && buf[from + 1] === 0x55 && buf[from + 2] === 0x54) return 'PUT';
      break;
    case 4:
      if (c === 0x50 && buf[from + 1] === 0x4f && buf[from + 2] === 0x53 && buf[from + 3] === 0x54) return 'POST';
      if (c === 0x48 && buf[from + 1] === 0x45 && buf[from + 2] === 0x41 && buf[from + 3] === 0x44) return 'HEAD';
      break;
  }
  return buf.latin1Slice(from, to);
}

/** Parses a request head in `buf[from..headEnd)` (see findHeadEnd). */
export function parseRequestHead(buf: Buffer, from: number, headEnd: number): RequestHead {
  let pos = from;
  while (TOKEN[buf[pos]!] === 1) pos++;
  if (pos === from || buf[pos] !== 0x20) throw new HeadError(400, 'malformed request line');
  const method = methodOf(buf, from, pos);
  const targetStart = ++pos;
  for (;;) {
    const c = buf[pos]!;
    if (c === 0x20) break;
    if (c < 0x21 || c >= 0x7f) throw new HeadError(400, c === 0x0d ? 'malformed request line' : 'invalid request target');
    pos++;
  }
  if (pos === targetStart) throw new HeadError(400, 'empty request target');
  const target = buf.latin1Slice(targetStart, pos);
  pos++;
  // "HTTP/1.x" CRLF
  if (buf[pos] !== 0x48 || buf[pos + 1] !== 0x54 || buf[pos + 2] !== 0x54 || buf[pos + 3] !== 0x50 || buf[pos + 4] !== 0x2f || buf[pos + 6] !== 0x2e || buf[pos + 8] !== 0x0d || buf[pos + 9] !== 0x0a) {
    throw new HeadError(400, 'malformed request line');
  }
  const major = buf[pos + 5]! - 0x30;
  const minor = buf[pos + 7]! - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) throw new HeadError(400, 'malformed request line');
  if (major !== 1 || minor > 1) throw new HeadError(505, 'HTTP version not supported');
  const head: RequestHead = {
    buf,
    start: from,
    headEnd,
    fieldsStart: pos + 10,
    fields: [],
    kinds: [],
    contentLength: -1,
    chunked: false,
    close: false,
    connectionTokens: undefined,
    method,
    target,
    minor,
    host: undefined,
    upgrade: undefined,
    wsKey: false,
  };
  const f = parseFields(head, true);
  if (f.hosts > 1) throw new HeadError(400, 'more than one host header');
  if (minor === 1 && f.hosts === 0) throw new HeadError(400, 'missing host header');
  if (f.hosts === 1) head.host = valueOf(head, H.Host);
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing; a 1.0 server
  // behind would read the body by Content-Length or until close. Refused rather than guessed.
  if (minor === 0 && head.chunked) throw new HeadError(400, 'transfer-encoding in an HTTP/1.0 request');
  head.wsKey = f.wsKey;
  if (f.upgrade !== undefined && f.connUpgrade) head.upgrade = f.upgrade;
  if (minor === 0 && !f.keepAlive) head.close = true;
  return head;
}

/** Parses a response head in `buf[from..headEnd)`. */
export function parseResponseHead(buf: Buffer, from: number, headEnd: number): ResponseHead {
  // "HTTP/1.x SSS[ reason]" CRLF
  if (buf[from] !== 0x48 || buf[from + 1] !== 0x54 || buf[from + 2] !== 0x54 || buf[from + 3] !== 0x50 || buf[from + 4] !== 0x2f || buf[from + 5] !== 0x31 || buf[from + 6] !== 0x2e || buf[from + 8] !== 0x20) {
    throw new HeadError(502, 'malformed status line');
  }
  const minor = buf[from + 7]! - 0x30;
  if (minor !== 0 && minor !== 1) throw new HeadError(502, 'unsupported HTTP version from backend');
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = buf[from + i]! - 0x30;
    if (d < 0 || d > 9) throw new HeadError(502, 'malformed status line');
    status = status * 10 + d;
  }
  if (status < 100) throw new HeadError(502, 'malformed status line');
  let pos = from + 12;
  if (buf[pos] !== 0x0d) {
    if (buf[pos] !== 0x20) throw new HeadError(502, 'malformed status line');
    while (buf[pos] !== 0x0d) {
      const c = buf[pos]!;
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw new HeadError(502, 'malformed status line');
      pos++;
    }
  }
  if (buf[pos + 1] !== 0x0a) throw new HeadError(502, 'malformed status line');
  const head: ResponseHead = {
    buf,
    start: from,
    headEnd,
    fieldsStart: pos + 2,
    fields: [],
    kinds: [],
    contentLength: -1,
    chunked: false,
    close: false,
    connectionTokens: undefined,
    status,
    minor,
    statusLineEnd: pos,
  };
  let facts: FieldFacts;
  try {
    facts = parseFields(head, false);
  } catch (err) {
    throw err instanceof HeadError && err.status === 400 ? new HeadError(502, err.message) : err;
  }
  if (minor === 0 && !facts.keepAlive) head.close = true;
  return head;
}

/** Whether header `i` of `head` is hop-by-hop (RFC 9110 §7.6.1): never forwarded as it came. */
export function isHopByHop(head: Head, i: number): boolean {
  switch (head.kinds[i]) {
    case H.Connection:
    case H.KeepAlive:
    case H.ProxyConnection:
    case H.Te:
    case H.Upgrade:
      return true;
    case H.Other:
      return head.connectionTokens !== undefined && head.connectionTokens.includes(fieldName(head, i));
    default:
      // Transfer-Encoding is kept: bodies pass through with their framing unchanged. So is Trailer
      // (end-to-end, RFC 9110 §6.6.2): the trailer fields it announces pass through too.
      return false;
  }
}

/** Kept runs of a head being rewritten (start, end pairs); grown when a head has more. */
let runs = new Int32Array(64);

/**
 * The head as a Buffer: its start line and the header lines `drop` does not refuse, copied as they
 * came (runs of kept lines at once), then `extra()` (header lines, each ending in CRLF, as a string
 * or as bytes; called after every `drop`), the blank line, and `tail` (body bytes sent in the same
 * write).
 */
export function rewriteHead(head: Head, drop: (i: number) => boolean, extra: () => string | Buffer, tail?: Buffer): Buffer {
  const { buf, fields } = head;
  const lines = head.kinds.length;
  if (runs.length < 2 * lines + 2) runs = new Int32Array(2 * lines + 2);
  let nRuns = 0;
  let runStart = head.start;
  let runEnd = head.fieldsStart;
  let kept = 0;
  for (let i = 0; i < lines; i++) {
    const lineEnd = fields[i * 5 + 4]!;
    if (drop(i)) {
      if (runEnd > runStart) {
        runs[nRuns++] = runStart;
        runs[nRuns++] = runEnd;
        kept += runEnd - runStart;
      }
      runStart = lineEnd;
    }
    runEnd = lineEnd;
  }
  if (runEnd > runStart) {
    runs[nRuns++] = runStart;
    runs[nRuns++] = runEnd;
    kept += runEnd - runStart;
  }
  const more = extra();
  // Latin-1: one byte per character, so a string's length is its size.
  const out = Buffer.allocUnsafe(kept + more.length + 2 + (tail?.length ?? 0));
  let n = 0;
  for (let r = 0; r < nRuns; r += 2) n = copyBytes(buf, runs[r]!, runs[r + 1]!, out, n);
  if (typeof more !== 'string') n = copyBytes(more, 0, more.length, out, n);
  else if (more.length > 0) n += out.latin1Write(more, n);
  out[n++] = 0x0d;
  out[n++] = 0x0a;
  if (tail) n = copyBytes(tail, 0, tail.length, out, n);
  return n === out.length ? out : out.subarray(0, n);
}

/**
 * Copies `src[from..to)` to `dst` at `at`; returns the offset past it. Short runs in a JS loop:
 * `Buffer.copy` costs ≈170 ns whatever the length (a native call and a view), the loop ≈2 ns a byte.
 */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  if (to - from > 64) return at + src.copy(dst, at, from, to);
  for (let i = from; i < to; i++) dst[at++] = src[i]!;
  return at;
}

/** Whether a response to `method` with `status` has a body at all (RFC 9112 §6.3). */
export function responseHasBody(method: string, status: number): boolean {
  return !(method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304);
}

/** Idempotent methods (RFC 9110 §9.2.2): safe to send again after a connection failure. */
export function isIdempotent(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || method === 'PUT' || method === 'DELETE' || method === 'TRACE';
}
