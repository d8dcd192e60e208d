// Room placements per second through the HTTP API, memory and Redis stores, beside a plain
// Fastify route returning a constant, in the same run on the same machine.
//   npm run build && npm run bench:rooms        (BENCH_DURATION=10 BENCH_CONNECTIONS=50)
import autocannon from 'autocannon';
import { cpuSnapshot, freePort, log, machine, main, start, waitHttp, writeResults } from './lib.mjs';

const duration = Number(process.env.BENCH_DURATION ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);

// A stand-in media server: answers room creation as mediasoup's API does.
const sfuScript = `
const http = require('node:http');
const port = Number(process.env.PORT);
http.createServer((req, res) => {
  if (req.method === 'GET') { res.writeHead(200, {'content-type':'application/json'}); return res.end('{"status":"ok"}'); }
  let body = ''; req.on('data', (c) => body += c); req.on('end', () => {
    const roomId = decodeURIComponent(req.url.split('/').pop());
    res.writeHead(200, {'content-type':'application/json'});
    res.end(JSON.stringify({ protocol: '2060-mediasoup-v1', wsUrl: 'ws://127.0.0.1:' + port, roomId }));
  });
}).listen(port, '127.0.0.1');
`;
// The reference: the cheapest Fastify route of the same shape.
const referenceScript = `
const app = require('fastify')({ logger: false });
app.post('/rooms/:roomId', async (req) => ({ protocol: '2060-mediasoup-v1', wsUrl: 'ws://127.0.0.1:1', roomId: req.params.roomId }));
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
`;

// The proxy anchor: the same HTTP work as a placement without the balancing — receive the
// request, POST it on to the media server over a kept-open undici Pool, answer with its body.
const proxyScript = `
const { Pool } = require('undici');
const pool = new Pool('http://127.0.0.1:' + process.env.SFU_PORT);
const app = require('fastify')({ logger: false });
app.post('/rooms/:roomId', async (req) => {
  const res = await pool.request({ path: '/rooms/' + encodeURIComponent(req.params.roomId), method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxPeerCount: 2 }) });
  return res.body.json();
});
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
`;

async function run(name, base) {
  let n = 0;
  const runId = `run${Date.now()}`;
  const opts = {
    url: base,
    connections,
    duration,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // A new room every request; the body is set here too, as autocannon rebuilds the request.
        setupRequest: (req) => ({ ...req, path: `/rooms/${runId}-${n++}`, body: '{"maxPeerCount":2}' }),
      },
    ],
  };
  log(`${name}: warm-up 2 s`);
  await autocannon({ ...opts, duration: 2 });
  log(`${name}: measuring ${duration} s with ${connections} connections`);
  const before = cpuSnapshot();
  const r = await autocannon(opts);
  const after = cpuSnapshot();
  // CPU µs per request for each process that used any, to see where the time goes.
  const cpuPerRequest = {};
  const total = Math.max(1, r.requests.total);
  for (const k of Object.keys(after)) {
    const user = (after[k][0] - before[k][0]) / total;
    const system = (after[k][1] - before[k][1]) / total;
    if (user + system >= 1) cpuPerRequest[k] = { total: Math.round(user + system), system: Math.round(system) };
  }
  log(`${name}: CPU µs per request ${JSON.stringify(cpuPerRequest)}`);
  return { name, cpuPerRequest, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx + r.errors + r.timeouts, placed: r['2xx'], status: r.statusCodeStats, errors: r.errors, timeouts: r.timeouts };
}

async function bench() {
  const [sfuPort, refPort, proxyPort, memPort, redisPort, redisSbPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  log('starting stand-in media server, reference Fastify, proxy anchor, redis-server, Switchboard (memory, redis)');
  start('sfu', process.execPath, ['-e', sfuScript], { PORT: String(sfuPort) });
  start('reference', process.execPath, ['-e', referenceScript], { PORT: String(refPort) });
  start('proxy', process.execPath, ['-e', proxyScript], { PORT: String(proxyPort), SFU_PORT: String(sfuPort) });
  start('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const sbEnv = { HOST: '127.0.0.1', LOG_LEVEL: 'warn', HEALTH_CHECK_INTERVAL: '600000' };
  await waitHttp(`http://127.0.0.1:${sfuPort}/health`);
  await new Promise((r) => setTimeout(r, 300));
  // BENCH_CPU_PROF=1 writes a V8 CPU profile of each Switchboard process to bench/results/prof/.
  const node = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', 'bench/results/prof'] : [];
  start('switchboard-memory', process.execPath, [...node, 'bin/switchboard.js', 'serve'], { ...sbEnv, APP_PORT: String(memPort) });
  start('switchboard-redis', process.execPath, [...node, 'bin/switchboard.js', 'serve'], { ...sbEnv, APP_PORT: String(redisSbPort), REDIS_URL: `redis://127.0.0.1:${redisPort}` });
  await Promise.all([`http://127.0.0.1:${refPort}/`, `http://127.0.0.1:${proxyPort}/`, `http://127.0.0.1:${memPort}/healthz`, `http://127.0.0.1:${redisSbPort}/healthz`].map((u) => waitHttp(u)));

  for (const port of [memPort, redisSbPort]) {
    const res = await fetch(`http://127.0.0.1:${port}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ serverId: 'sfu-1', serviceUrl: `http://127.0.0.1:${sfuPort}`, workers: 1, capacity: 1e9 }),
    });
    if (res.status !== 200) throw new Error(`register failed: ${res.status}`);
  }

  const results = [];
  results.push(await run('reference (constant Fastify route)', `http://127.0.0.1:${refPort}`));
  results.push(await run('anchor: plain Node proxy to the media server', `http://127.0.0.1:${proxyPort}`));
  for (const [name, port] of [['switchboard, memory store', memPort], ['switchboard, redis store', redisSbPort]]) {
    const r = await run(name, `http://127.0.0.1:${port}`);
    const server = await (await fetch(`http://127.0.0.1:${port}/servers/sfu-1`)).json();
    r.reservedOk = server.reserved === server.placements * 4;
    results.push(r);
  }
  const ref = results[0].rps;
  const proxy = results[1].rps;
  const targets = { 'switchboard, memory store': 0.5, 'switchboard, redis store': 0.3 };
  const cpu = (r) => Object.entries(r.cpuPerRequest).map(([k, v]) => `${k} ${v.total}`).join(', ');
  console.log('\n| target | req/s | p50 ms | p99 ms | errors | ratio to reference | ratio to proxy | goal | CPU µs per request |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const r of results) {
    r.ratio = r.rps / ref;
    r.ratioToProxy = r.rps / proxy;
    const goal = targets[r.name] ? `≥ ${targets[r.name]}×` : '';
    console.log(`| ${r.name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.ratio.toFixed(2)}× | ${r.ratioToProxy.toFixed(2)}× | ${goal} | ${cpu(r)} |`);
  }
  const info = { ...machine(), duration, connections };
  console.log(`\n${JSON.stringify(info)}`);
  for (const r of results.slice(2)) if (!r.reservedOk || r.non2xx > 0) console.log(`WARNING: ${r.name}: ${r.non2xx} errors, reserved consistent: ${r.reservedOk}`);
  writeResults('rooms', { machine: info, results });
}

main(bench);
