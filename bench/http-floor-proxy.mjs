// The floor of an HTTP/1.1 reverse proxy written in Node: bench/proxy.mjs's `pipe` anchor plus what
// every HTTP proxy must do per request, and nothing else. The request head is found, its request
// line read (method and target as strings) and its header lines walked; X-Forwarded-For,
// X-Forwarded-Proto and X-Client-IP are added. The response's status line and header lines are
// walked, Content-Length read and the hop-by-hop Connection line dropped. Backends: pooled
// keep-alive sockets read with `onread` into one buffer, round robin, one request in flight per
// client connection.
//
// What it leaves out is everything Switchboard adds on top: routing, policies, timeouts, limits,
// validation of every byte, metrics, health, retries, bodies. Like the pipe, it takes each read to
// hold one whole message — true for the benchmark's small GETs and 100-byte answers only, so it
// serves nothing else. Its CPU per request above the pipe's is the cost of HTTP itself in Node; the
// target for Switchboard is read against it (docs/benchmarks.md).
//   PORT=8081 BACKENDS=3001,3002 node bench/http-floor-proxy.mjs
import { Buffer } from 'node:buffer';
import net from 'node:net';

const READ = Buffer.allocUnsafe(65536);
const ports = (process.env.BACKENDS ?? '').split(',').map(Number);
if (!ports.length || ports.some((p) => !(p > 0))) throw new Error('BACKENDS: comma-separated backend ports on 127.0.0.1');
const idle = ports.map(() => []);
let next = 0;

/** Offset past the head's CRLFCRLF in b[from..to), or -1: a JS scan (as Switchboard's head parser). */
function headEnd(b, from, to) {
  for (let p = from + 3; p < to; p += 4) {
    const c = b[p];
    if (c !== 10 && c !== 13) continue;
    for (let j = p - 3 < from ? from : p - 3; j <= p && j + 3 < to; j++) {
      if (b[j] === 13 && b[j + 1] === 10 && b[j + 2] === 13 && b[j + 3] === 10) return j + 4;
    }
  }
  return -1;
}

/** Walks header lines b[pos..end): facts[0] = Content-Length (or -1), facts[1..2] = the Connection line's span (or -1). */
const facts = [-1, -1, -1];
function fields(b, pos, end) {
  facts[0] = -1;
  facts[1] = -1;
  while (pos < end - 2) {
    const name = pos;
    while (b[pos] !== 58) pos++;
    const nameEnd = pos++;
    while (b[pos] === 32) pos++;
    const value = pos;
    while (b[pos] !== 13) pos++;
    const len = nameEnd - name;
    if (len === 14 && (b[name] | 32) === 99 && (b[name + 8] | 32) === 108) {
      let v = 0;
      for (let k = value; k < pos; k++) v = v * 10 + b[k] - 48;
      facts[0] = v;
    } else if (len === 10 && (b[name] | 32) === 99 && (b[name + 3] | 32) === 110) {
      facts[1] = name;
      facts[2] = pos + 2;
    }
    pos += 2;
  }
}

function backend(i) {
  const pooled = idle[i].pop();
  if (pooled) return pooled;
  const b = net.connect({
    host: '127.0.0.1',
    port: ports[i],
    onread: {
      buffer: READ,
      callback(n, buf) {
        const end = headEnd(buf, 0, n);
        fields(buf, buf.indexOf(10) + 1, end);
        const out = Buffer.allocUnsafe(n);
        let at;
        if (facts[1] >= 0) {
          at = buf.copy(out, 0, 0, facts[1]);
          at += buf.copy(out, at, facts[2], n);
        } else at = buf.copy(out, 0, 0, n);
        const client = b.client;
        b.client = null;
        idle[i].push(b);
        client.write(at === n ? out : out.subarray(0, at));
        return true;
      },
    },
  });
  b.setNoDelay(true);
  b.on('error', () => {});
  return b;
}

net
  .createServer({ noDelay: true }, (c) => {
    const extra = Buffer.from(`x-forwarded-for: ${c.remoteAddress}\r\nx-forwarded-proto: http\r\nx-client-ip: ${c.remoteAddress}:${c.remotePort}\r\n\r\n`, 'latin1');
    c.on('data', (d) => {
      const end = headEnd(d, 0, d.length);
      if (end === -1) return c.destroy();
      let sp = 0;
      while (d[sp] !== 32) sp++;
      const method = d.latin1Slice(0, sp);
      let t = sp + 1;
      while (d[t] !== 32) t++;
      const target = d.latin1Slice(sp + 1, t);
      fields(d, d.indexOf(10, t) + 1, end);
      if (method !== 'GET' || target === '') return c.destroy();
      const out = Buffer.allocUnsafe(end - 2 + extra.length);
      d.copy(out, 0, 0, end - 2);
      extra.copy(out, end - 2);
      const b = backend(next++ % ports.length);
      b.client = c;
      b.write(out);
    });
    c.on('error', () => {});
  })
  .listen(Number(process.env.PORT), '127.0.0.1');
