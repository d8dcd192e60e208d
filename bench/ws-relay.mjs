// WebSocket relay benchmark pieces, with no WebSocket package: hand framing of small messages.
//   node bench/ws-relay.mjs echo <port>   an echo server: GET / answers 200 "ok" (for health checks),
//                                          an Upgrade: websocket request is accepted and every text or
//                                          binary message is sent back unmasked.
//   import { pingPong } from './ws-relay.mjs'   the client: N connections, each sends one masked
//                                          message, waits for its echo, sends the next (round trips).
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptOf = (key) => createHash('sha1').update(key + GUID).digest('base64');

/** Header of an unmasked frame (server → client) or masked (client → server), FIN set. */
function header(opcode, length, masked) {
  const m = masked ? 0x80 : 0;
  if (length < 126) return Buffer.from([0x80 | opcode, m | length]);
  if (length < 65536) {
    const h = Buffer.alloc(4);
    h[0] = 0x80 | opcode;
    h[1] = m | 126;
    h.writeUInt16BE(length, 2);
    return h;
  }
  const h = Buffer.alloc(10);
  h[0] = 0x80 | opcode;
  h[1] = m | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  return h;
}

/**
 * Splits whole frames off the front of buf; calls onFrame(opcode, payload) with the payload
 * unmasked. Returns what is left (an incomplete frame).
 */
function parseFrames(buf, onFrame) {
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off];
    const b1 = buf[off + 1];
    let len = b1 & 0x7f;
    let pos = off + 2;
    if (len === 126) {
      if (buf.length - off < 4) break;
      len = buf.readUInt16BE(off + 2);
      pos = off + 4;
    } else if (len === 127) {
      if (buf.length - off < 10) break;
      len = Number(buf.readBigUInt64BE(off + 2));
      pos = off + 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const need = pos + (masked ? 4 : 0) + len;
    if (buf.length < need) break;
    let payload;
    if (masked) {
      const k = pos;
      payload = Buffer.allocUnsafe(len);
      for (let i = 0; i < len; i++) payload[i] = buf[k + 4 + i] ^ buf[k + (i & 3)];
    } else {
      payload = buf.subarray(pos, need);
    }
    onFrame(b0 & 0x0f, payload);
    off = need;
  }
  return off === 0 ? buf : buf.subarray(off);
}

export function echoServer(port, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  server.on('upgrade', (req, socket, head) => {
    const key = req.headers['sec-websocket-key'];
    if (!key || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.setNoDelay(true);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptOf(key)}\r\n\r\n`);
    let buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
    const onData = (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      buf = parseFrames(buf, (opcode, payload) => {
        if (opcode === 1 || opcode === 2) socket.write(Buffer.concat([header(opcode, payload.length, false), payload]));
        else if (opcode === 9) socket.write(Buffer.concat([header(10, payload.length, false), payload]));
        else if (opcode === 8) socket.end(Buffer.concat([header(8, payload.length, false), payload]));
      });
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
    if (buf.length) onData(Buffer.alloc(0));
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

/** Opens one WebSocket over TCP; resolves with the socket and any bytes read past the 101 answer. */
function open(host, port, path, timeoutMs) {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket = connect(port, host);
    socket.setNoDelay(true);
    let acc = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no 101 answer within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    const onData = (chunk) => {
      acc = Buffer.concat([acc, chunk]);
      const end = acc.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', fail);
      clearTimeout(timer);
      const head = acc.subarray(0, end).toString('latin1');
      const status = head.split('\r\n')[0];
      if (!/^HTTP\/1\.1 101/.test(status)) return fail(new Error(`upgrade refused: ${status}`));
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1];
      if (accept !== acceptOf(key)) return fail(new Error('wrong Sec-WebSocket-Accept'));
      resolve({ socket, rest: acc.subarray(end + 4) });
    };
    socket.on('data', onData);
  });
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

/**
 * Ping-pong over `connections` WebSockets for `seconds` (after `warmupSeconds` not counted): each
 * connection sends a `size`-byte masked text message and sends the next when its echo arrives.
 * Returns { messages, rate (round trips/s), p50, p99 (ms), errors }.
 */
export async function pingPong({ host = '127.0.0.1', port, path = '/', connections = 32, seconds = 10, warmupSeconds = 1, size = 32 }) {
  const conns = await Promise.all(Array.from({ length: connections }, () => open(host, port, path, 5000)));
  let counting = false;
  let running = true;
  let messages = 0;
  let errors = 0;
  const latencies = [];
  const payload = Buffer.alloc(size, 'x');
  const done = [];
  for (const { socket, rest } of conns) {
    const mask = randomBytes(4);
    const masked = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) masked[i] = payload[i] ^ mask[i & 3];
    const frame = Buffer.concat([header(1, size, true), mask, masked]);
    let buf = rest;
    let sentAt = 0n;
    const send = () => {
      sentAt = process.hrtime.bigint();
      socket.write(frame);
    };
    done.push(
      new Promise((resolve) => {
        socket.on('close', resolve);
        socket.on('error', () => {
          if (running) errors++;
        });
      }),
    );
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      buf = parseFrames(buf, (opcode, data) => {
        if (opcode !== 1) return;
        if (data.length !== size) errors++;
        if (counting) {
          messages++;
          latencies.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
        }
        if (running) send();
      });
    });
    send();
  }
  await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
  counting = true;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  running = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  for (const { socket } of conns) socket.end(Buffer.concat([header(8, 0, true), Buffer.alloc(4)]));
  await Promise.race([Promise.all(done), new Promise((r) => setTimeout(r, 2000))]);
  for (const { socket } of conns) socket.destroy();
  latencies.sort((a, b) => a - b);
  return {
    messages,
    rate: messages / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    errors,
    clientCpuUs: cpu.user + cpu.system,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, port] = process.argv.slice(2);
  if (mode !== 'echo' || !port) {
    console.error('usage: node bench/ws-relay.mjs echo <port>');
    process.exit(2);
  }
  await echoServer(Number(port));
}
