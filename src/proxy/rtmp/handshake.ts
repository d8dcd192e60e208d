/**
 * The simple (non-digest) RTMP handshake, as server and as client. C0/S0 is the version byte
 * (3); C1/S1 are 1536 bytes: time (4), zero (4), random (1528); C2/S2 echo the peer's C1/S1.
 * Clients that offer the digest handshake (ffmpeg, OBS) fall back to the simple one when S1's
 * version field is zero; nginx-rtmp and SRS accept a simple C1.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { SocketFeed } from './feed.js';

export const RTMP_VERSION = 3;
export const HANDSHAKE_SIZE = 1536;

/** Handshake bytes that are not RTMP. */
export class RtmpHandshakeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtmpHandshakeError';
  }
}

function packet(time: number): Buffer {
  const p = randomBytes(HANDSHAKE_SIZE);
  p.writeUInt32BE(time >>> 0, 0);
  p.writeUInt32BE(0, 4);
  return p;
}

/** S2 / C2: the peer's packet with our read time in bytes 4-7. */
function echo(peer: Buffer, time: number): Buffer {
  const e = Buffer.from(peer);
  e.writeUInt32BE(time >>> 0, 4);
  return e;
}

/** Server side: reads C0+C1, sends S0+S1+S2, reads C2. */
export async function serverHandshake(feed: SocketFeed, socket: Socket, epoch = Date.now()): Promise<void> {
  const c0 = await feed.read(1);
  if (c0[0] !== RTMP_VERSION) throw new RtmpHandshakeError(`unsupported RTMP version byte 0x${c0[0]!.toString(16)}`);
  const c1 = await feed.read(HANDSHAKE_SIZE);
  const now = Date.now() - epoch;
  socket.write(Buffer.concat([Buffer.from([RTMP_VERSION]), packet(now), echo(c1, now)]));
  await feed.read(HANDSHAKE_SIZE); // C2: content not checked (clients differ in what they echo)
}

/** Client side: sends C0+C1, reads S0+S1+S2, sends C2. */
export async function clientHandshake(feed: SocketFeed, socket: Socket, epoch = Date.now()): Promise<void> {
  socket.write(Buffer.concat([Buffer.from([RTMP_VERSION]), packet(Date.now() - epoch)]));
  const s0 = await feed.read(1);
  if (s0[0] !== RTMP_VERSION) throw new RtmpHandshakeError(`origin answered version byte 0x${s0[0]!.toString(16)}`);
  const s1 = await feed.read(HANDSHAKE_SIZE);
  await feed.read(HANDSHAKE_SIZE); // S2
  socket.write(echo(s1, Date.now() - epoch));
}
