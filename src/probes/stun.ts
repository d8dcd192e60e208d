import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ProbeOutcome } from '../core/health.js';
import { FORBIDDEN_DESTINATION, type ForbiddenDestinationError, type NetworkPolicy } from '../security/network-policy.js';

/*
 * STUN (RFC 8489), just what a health probe needs: encode a Binding request, decode a message,
 * read (XOR-)MAPPED-ADDRESS, check FINGERPRINT. Hand-written: no maintained npm package does
 * this small job without pulling in a whole ICE stack.
 */

export const MAGIC_COOKIE = 0x2112a442;
const ATTR_MAPPED_ADDRESS = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_SOFTWARE = 0x8022;
const ATTR_FINGERPRINT = 0x8028;
const FINGERPRINT_XOR = 0x5354554e;

export interface StunAttribute {
  type: number;
  value: Buffer;
}

export interface StunMessage {
  type: number;
  method: number;
  class: 'request' | 'indication' | 'success' | 'error';
  transactionId: Buffer;
  attributes: StunAttribute[];
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function attribute(type: number, value: Buffer): Buffer {
  const padded = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(value.length, 2);
  value.copy(padded, 4);
  return padded;
}

export function encodeBindingRequest(transactionId: Buffer, opts: { software?: string; fingerprint?: boolean } = {}): Buffer {
  if (transactionId.length !== 12) throw new Error('a STUN transaction id is 12 bytes');
  const attrs: Buffer[] = [];
  if (opts.software) attrs.push(attribute(ATTR_SOFTWARE, Buffer.from(opts.software, 'utf8')));
  const body = Buffer.concat(attrs);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt16BE(body.length + (opts.fingerprint ? 8 : 0), 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  const message = Buffer.concat([header, body]);
  if (!opts.fingerprint) return message;
  const fp = Buffer.alloc(4);
  fp.writeUInt32BE((crc32(message) ^ FINGERPRINT_XOR) >>> 0, 0);
  return Buffer.concat([message, attribute(ATTR_FINGERPRINT, fp)]);
}

/** Decodes a STUN message; undefined for anything that is not one. Never throws. */
export function decodeMessage(buf: Buffer): StunMessage | undefined {
  if (buf.length < 20 || (buf[0]! & 0xc0) !== 0) return undefined;
  const type = buf.readUInt16BE(0);
  const length = buf.readUInt16BE(2);
  if (buf.readUInt32BE(4) !== MAGIC_COOKIE || length % 4 !== 0 || length + 20 !== buf.length) return undefined;
  const attributes: StunAttribute[] = [];
  let offset = 20;
  while (offset < buf.length) {
    if (offset + 4 > buf.length) return undefined;
    const attrType = buf.readUInt16BE(offset);
    const attrLength = buf.readUInt16BE(offset + 2);
    if (offset + 4 + attrLength > buf.length) return undefined;
    attributes.push({ type: attrType, value: buf.subarray(offset + 4, offset + 4 + attrLength) });
    offset += 4 + Math.ceil(attrLength / 4) * 4;
  }
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const cls = ((type & 0x0010) >> 4) | ((type & 0x0100) >> 7);
  return {
    type,
    method,
    class: (['request', 'indication', 'success', 'error'] as const)[cls]!,
    transactionId: Buffer.from(buf.subarray(8, 20)),
    attributes,
  };
}

export interface MappedAddress {
  family: 'IPv4' | 'IPv6';
  address: string;
  port: number;
}

function readAddress(value: Buffer, xorWith?: Buffer): MappedAddress | undefined {
  if (value.length < 8) return undefined;
  const family = value[1];
  const port = value.readUInt16BE(2) ^ (xorWith ? xorWith.readUInt16BE(0) : 0);
  const size = family === 0x01 ? 4 : family === 0x02 ? 16 : 0;
  if (size === 0 || value.length < 4 + size) return undefined;
  const raw = Buffer.from(value.subarray(4, 4 + size));
  if (xorWith) for (let i = 0; i < size; i++) raw[i]! ^= xorWith[i]!;
  if (size === 4) return { family: 'IPv4', address: [...raw].join('.'), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
  return { family: 'IPv6', address: groups.join(':'), port };
}

export function xorMappedAddress(msg: StunMessage): MappedAddress | undefined {
  const attr = msg.attributes.find((a) => a.type === ATTR_XOR_MAPPED_ADDRESS);
  if (!attr) return undefined;
  const key = Buffer.alloc(16);
  key.writeUInt32BE(MAGIC_COOKIE, 0);
  msg.transactionId.copy(key, 4);
  return readAddress(attr.value, key);
}

export function mappedAddress(msg: StunMessage): MappedAddress | undefined {
  const attr = msg.attributes.find((a) => a.type === ATTR_MAPPED_ADDRESS);
  return attr ? readAddress(attr.value) : undefined;
}

/** Whether the FINGERPRINT attribute is right; undefined when the message has none. */
export function checkFingerprint(buf: Buffer): boolean | undefined {
  if (buf.length < 28) return undefined;
  const at = buf.length - 8;
  if (buf.readUInt16BE(at) !== ATTR_FINGERPRINT || buf.readUInt16BE(at + 2) !== 4) return undefined;
  return ((crc32(buf.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0) === buf.readUInt32BE(at + 4);
}

interface PendingProbe {
  transactionId: Buffer;
  request: Buffer;
  host: string;
  port: number;
  timeoutMs: number;
  started: number;
  sent: number;
  timer: NodeJS.Timeout;
  resolve: (outcome: ProbeOutcome & { mapped?: MappedAddress }) => void;
}

/**
 * STUN Binding probes over UDP: the honest probe for a UDP-only TURN listener. Each request is
 * sent at 0, ¼ and ½ of the timeout (UDP may drop one); healthy when a Binding success response
 * with our transaction id carries a mapped address.
 *
 * All probes share one socket per address family and are told apart by their 96-bit random
 * transaction id: a socket per probe costs a socket, a bind, an epoll registration and a close
 * for every probe, which with a thousand TURN endpoints probed every second is most of the cost
 * (measured in bench/turn-probes.mjs).
 */
export class StunProber {
  private readonly sockets = new Map<'udp4' | 'udp6', Socket>();
  private readonly pending = new Map<string, PendingProbe>();
  // Transaction ids are cut from one block of random bytes: a randomBytes() call per probe was a
  // fifth of the probing CPU (each call is a trip into OpenSSL).
  private random = Buffer.alloc(0);
  private randomAt = 0;
  private closed = false;

  private transactionId(): Buffer {
    if (this.randomAt + 12 > this.random.length) {
      this.random = randomBytes(12 * 256);
      this.randomAt = 0;
    }
    const id = Buffer.from(this.random.subarray(this.randomAt, this.randomAt + 12));
    this.randomAt += 12;
    return id;
  }

  /**
   * @param options.policy The SSRF guard: with it, an IP literal the policy refuses is not sent
   * to, and a name is resolved (and checked) first, then the probe goes to the resolved address.
   */
  constructor(private readonly options: { policy?: NetworkPolicy } = {}) {}

  probe(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome & { mapped?: MappedAddress }> {
    if (this.closed) return Promise.resolve({ ok: false, error: 'prober closed', at: Date.now(), latencyMs: 0 });
    const policy = this.options.policy;
    if (policy) {
      if (!isIP(host)) {
        return policy.resolveChecked(host).then(
          (a) => this.probe(a.address, port, timeoutMs),
          (err: NodeJS.ErrnoException) => ({ ok: false, at: Date.now(), latencyMs: 0, error: err.code === FORBIDDEN_DESTINATION ? `${err.code}: ${(err as ForbiddenDestinationError).reason}` : (err.code ?? err.message) }),
        );
      }
      const reason = policy.refusal(host);
      if (reason) return Promise.resolve({ ok: false, at: Date.now(), latencyMs: 0, error: `${FORBIDDEN_DESTINATION}: ${reason}` });
    }
    const transactionId = this.transactionId();
    return new Promise((resolve) => {
      const p: PendingProbe = {
        transactionId,
        request: encodeBindingRequest(transactionId, { fingerprint: true }),
        host,
        port,
        timeoutMs,
        started: performance.now(),
        sent: 0,
        timer: undefined as unknown as NodeJS.Timeout,
        resolve,
      };
      this.pending.set(transactionId.toString('latin1'), p);
      this.send(p);
    });
  }

  /** Fails what is in flight and closes the sockets. */
  close(): void {
    this.closed = true;
    for (const p of [...this.pending.values()]) this.finish(p, { ok: false, error: 'prober closed' });
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private send(p: PendingProbe): void {
    p.sent++;
    // One timer per probe at a time: the next retransmission, or the deadline after the third.
    const next = p.sent < 3 ? (p.timeoutMs / 4) * p.sent : p.timeoutMs;
    p.timer = setTimeout(() => (p.sent < 3 ? this.send(p) : this.finish(p, { ok: false, error: `timeout after ${p.timeoutMs} ms` })), next - (performance.now() - p.started));
    this.socket(isIP(p.host) === 6 ? 'udp6' : 'udp4').send(p.request, p.port, p.host, (err) => {
      if (err) this.finish(p, { ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message });
    });
  }

  private finish(p: PendingProbe, outcome: Omit<ProbeOutcome, 'at' | 'latencyMs'> & { mapped?: MappedAddress }): void {
    if (!this.pending.delete(p.transactionId.toString('latin1'))) return;
    clearTimeout(p.timer);
    p.resolve({ ...outcome, at: Date.now(), latencyMs: performance.now() - p.started });
  }

  private onMessage(data: Buffer): void {
    if (data.length < 20) return;
    const p = this.pending.get(data.toString('latin1', 8, 20));
    if (!p) return;
    const msg = decodeMessage(data);
    if (!msg || msg.method !== 0x001 || !msg.transactionId.equals(p.transactionId)) return;
    if (msg.class !== 'success') return this.finish(p, { ok: false, error: 'STUN Binding error response' });
    const mapped = xorMappedAddress(msg) ?? mappedAddress(msg);
    this.finish(p, mapped ? { ok: true, mapped } : { ok: false, error: 'STUN response without a mapped address' });
  }

  private socket(family: 'udp4' | 'udp6'): Socket {
    let socket = this.sockets.get(family);
    if (!socket) {
      socket = createSocket(family);
      socket.on('message', (data) => this.onMessage(data));
      // A socket-level error (rare on an unconnected UDP socket) fails this family's probes; the
      // next probe opens a new socket.
      socket.on('error', (err: NodeJS.ErrnoException) => {
        this.sockets.delete(family);
        socket!.close();
        for (const p of [...this.pending.values()]) if ((isIP(p.host) === 6 ? 'udp6' : 'udp4') === family) this.finish(p, { ok: false, error: err.code ?? err.message });
      });
      // Probes in flight keep their own timers; an idle prober must not keep the process alive.
      socket.unref();
      this.sockets.set(family, socket);
    }
    return socket;
  }
}

let shared: StunProber | undefined;

/** One STUN Binding probe through a process-wide shared prober. */
export function probeStun(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome & { mapped?: MappedAddress }> {
  shared ??= new StunProber();
  return shared.probe(host, port, timeoutMs);
}
