import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ProbeOutcome } from '../core/health.js';

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

/**
 * A STUN Binding request over UDP: the honest probe for a UDP-only TURN listener. Sent at 0, ¼
 * and ½ of the timeout (UDP may drop one); healthy when a Binding success response with our
 * transaction id carries a mapped address.
 */
export function probeStun(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome & { mapped?: MappedAddress }> {
  const started = performance.now();
  const transactionId = randomBytes(12);
  const request = encodeBindingRequest(transactionId, { fingerprint: true });
  const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    const timers: NodeJS.Timeout[] = [];
    let done = false;
    const finish = (outcome: Omit<ProbeOutcome, 'at' | 'latencyMs'> & { mapped?: MappedAddress }) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      socket.close();
      resolve({ ...outcome, at: Date.now(), latencyMs: performance.now() - started });
    };
    socket.on('message', (data) => {
      const msg = decodeMessage(data);
      if (!msg || msg.method !== 0x001 || !msg.transactionId.equals(transactionId)) return;
      if (msg.class !== 'success') return finish({ ok: false, error: 'STUN Binding error response' });
      const mapped = xorMappedAddress(msg) ?? mappedAddress(msg);
      finish(mapped ? { ok: true, mapped } : { ok: false, error: 'STUN response without a mapped address' });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ?? err.message }));
    const send = () => socket.send(request, port, host, (err) => err && finish({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    for (const at of [0, timeoutMs / 4, timeoutMs / 2]) timers.push(setTimeout(send, at));
    timers.push(setTimeout(() => finish({ ok: false, error: `timeout after ${timeoutMs} ms` }), timeoutMs));
  });
}
