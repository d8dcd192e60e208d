// Room placements per second through the HTTP API, memory and Redis stores, against two proxy
// anchors doing the same two HTTP exchanges without any balancing, in the same run on the same
// machine. Ratios are taken against the STRONGER anchor (more req/s).
//   npm run build && npm run bench:rooms
//   BENCH_DURATION=10 BENCH_CONNECTIONS=50 BENCH_ROUNDS=2 (defaults)
//   BENCH_ONLY=memory,redis,proxy    runs to do: http-proxy, fastify-proxy, proxy (= both proxies),
//                                    memory, redis, reference (constant Fastify route, not by default)
//   BENCH_CPU_PROF=1                 V8 CPU profiles of the Switchboard processes in bench/results/prof/
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { cpuSnapshot, freePort, log, machine, main, start, waitHttp, writeResults } from './lib.mjs';

const duration = Number(process.env.BENCH_DURATION ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const SERVER_ID = 'sfu-1';
const UNITS_PER_ROOM = 4; // maxPeerCount 2 × 1 × consumersPerPeerPair 2 (the defaults)
const TARGETS = { memory: 0.8, redis: 0.6 };
const P99_FACTOR = 2;

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

// Not a proxy: the cheapest Fastify route of the same shape (the older reference; only on request).
const referenceScript = `
const app = require('fastify')({ logger: false });
app.post('/rooms/:roomId', async (req) => ({ protocol: '2060-mediasoup-v1', wsUrl: 'ws://127.0.0.1:1', roomId: req.params.roomId }));
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
`;

// Anchor 1: Fastify proxy — receive POST /rooms/:roomId, POST it on to the media server over a
// kept-open undici Pool, answer with its (parsed and re-serialized) body.
const fastifyProxyScript = `
const { Pool } = require('undici');
const pool = new Pool('http://127.0.0.1:' + process.env.SFU_PORT);
const app = require('fastify')({ logger: false });
app.post('/rooms/:roomId', async (req) => {
  const res = await pool.request({ path: '/rooms/' + encodeURIComponent(req.params.roomId), method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxPeerCount: 2 }) });
  return res.body.json();
});
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
`;

// Anchor 2: the same two exchanges with no framework — a bare node:http server reading and parsing
// the request body, one POST to the media server over a kept-open undici Pool, its body answered
// as received.
const httpProxyScript = `
const http = require('node:http');
const { Pool } = require('undici');
const pool = new Pool('http://127.0.0.1:' + process.env.SFU_PORT, { connections: null, keepAliveTimeout: 10000 });
const HEADERS = { 'content-type': 'application/json' };
http.createServer((req, res) => {
  if (req.method !== 'POST') { res.writeHead(404); return res.end(); }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let maxPeerCount = 2;
    try {
      const text = Buffer.concat(chunks).toString();
      const b = text ? JSON.parse(text) : {};
      if (typeof b.maxPeerCount === 'number') maxPeerCount = b.maxPeerCount;
    } catch { res.writeHead(400); return res.end(); }
    const roomId = decodeURIComponent(req.url.slice(req.url.lastIndexOf('/') + 1));
    pool.request({ path: '/rooms/' + encodeURIComponent(roomId), method: 'POST', headers: HEADERS, body: JSON.stringify({ maxPeerCount }) })
      .then((r) => r.body.text().then((text) => {
        res.writeHead(r.statusCode >= 200 && r.statusCode < 300 ? 200 : 502, HEADERS);
        res.end(text);
      }))
      .catch((err) => { res.writeHead(502, HEADERS); res.end(JSON.stringify({ error: String(err) })); });
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const ALL = {
  'http-proxy': { name: 'anchor: node:http + undici proxy', anchor: true },
  'fastify-proxy': { name: 'anchor: Fastify + undici proxy', anchor: true },
  memory: { name: 'Switchboard, memory store', switchboard: true },
  redis: { name: 'Switchboard, Redis store', switchboard: true },
  reference: { name: 'constant Fastify route (not a proxy)' },
};

function selected() {
  const raw = process.env.BENCH_ONLY;
  if (!raw) return ['http-proxy', 'fastify-proxy', 'memory', 'redis'];
  const keys = new Set();
  for (const k of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (k === 'proxy') keys.add('http-proxy').add('fastify-proxy');
    else if (k in ALL) keys.add(k);
    else throw new Error(`BENCH_ONLY: unknown run "${k}" (known: ${Object.keys(ALL).join(', ')}, proxy)`);
  }
  return Object.keys(ALL).filter((k) => keys.has(k));
}

/** CPU time all processes on the machine have used so far, in µs (user + nice + system, from /proc/stat). */
function machineBusy() {
  const [, user, nice, system] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return ((user + nice + system) * 1e6) / 100;
}

const json = async (url) => {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
};

/** One autocannon run; every 2xx answer's roomId is collected. */
async function drive(base, runId, seq, seconds, answered) {
  const opts = {
    url: base,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // A new room every request; the body is set here too, as autocannon rebuilds the request.
        setupRequest: (req) => ({ ...req, path: `/rooms/${runId}-${seq.n++}`, body: '{"maxPeerCount":2}' }),
        onResponse: (status, body) => {
          if (status >= 200 && status < 300) answered.push(body);
        },
      },
    ],
  };
  return autocannon(opts);
}

async function closeRooms(base, ids) {
  const pool = new Pool(base, { connections: 16 });
  const statuses = {};
  let i = 0;
  const worker = async () => {
    while (i < ids.length) {
      const roomId = ids[i++];
      const res = await pool.request({
        path: '/room-closed',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ serverId: SERVER_ID, roomId }),
      });
      await res.body.dump();
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  await pool.close();
  return statuses;
}

/** Placements, reserved units and leaks on a Switchboard after a run; closes every room it made. */
async function checkAndClose(base, runId, sent, bodies, label) {
  await new Promise((r) => setTimeout(r, 500)); // let placements in flight when autocannon stopped finish
  const problems = [];
  const ids = [];
  for (const b of bodies) {
    try {
      ids.push(JSON.parse(b).roomId);
    } catch {
      problems.push(`a 2xx answer is not JSON: ${String(b).slice(0, 80)}`);
    }
  }
  const answered = new Set(ids);
  if (answered.size !== ids.length) problems.push(`${ids.length - answered.size} roomIds answered twice`);
  for (const id of answered) if (!id?.startsWith(`${runId}-`)) problems.push(`answer for a roomId never sent: ${id}`);
  const { body: before } = await json(`${base}/servers/${SERVER_ID}`);
  if (before.reserved !== before.placements * UNITS_PER_ROOM) problems.push(`reserved ${before.reserved} ≠ ${UNITS_PER_ROOM} × ${before.placements} placements`);
  if (before.placements < answered.size) problems.push(`${before.placements} placements < ${answered.size} rooms answered 2xx`);
  // A sample of rooms, looked up one by one.
  const sample = [...answered].filter((_, k, a) => k % Math.max(1, Math.floor(a.length / 100)) === 0).slice(0, 100);
  let sampleBad = 0;
  for (const id of sample) {
    const { status, body } = await json(`${base}/rooms/${encodeURIComponent(id)}`);
    if (status !== 200 || body.serverId !== SERVER_ID || body.consumers !== UNITS_PER_ROOM || body.state !== 'ready') sampleBad++;
  }
  if (sampleBad) problems.push(`${sampleBad} of ${sample.length} sampled rooms not found ready with ${UNITS_PER_ROOM} units`);
  // Close every room answered 2xx (each must be in the store), then every id sent whose answer the
  // client never read (placements in flight when the run stopped: 200 if it was created, else 404).
  log(`${label}: closing ${answered.size} rooms (POST /room-closed)`);
  const closedAnswered = await closeRooms(base, [...answered]);
  if ((closedAnswered[200] ?? 0) !== answered.size) problems.push(`closing answered rooms: ${JSON.stringify(closedAnswered)}`);
  const unanswered = [];
  for (let k = 0; k < sent; k++) if (!answered.has(`${runId}-${k}`)) unanswered.push(`${runId}-${k}`);
  const closedUnanswered = await closeRooms(base, unanswered);
  const inflightCreated = closedUnanswered[200] ?? 0;
  if ((closedUnanswered[200] ?? 0) + (closedUnanswered[404] ?? 0) !== unanswered.length) problems.push(`closing unanswered ids: ${JSON.stringify(closedUnanswered)}`);
  if (before.placements !== answered.size + inflightCreated) {
    problems.push(`${before.placements} placements ≠ ${answered.size} answered + ${inflightCreated} created while the client stopped`);
  }
  const { body: after } = await json(`${base}/servers/${SERVER_ID}`);
  if (after.reserved !== 0 || after.placements !== 0) problems.push(`after closing all rooms: reserved ${after.reserved}, placements ${after.placements}`);
  return {
    rooms: answered.size,
    placementsBeforeClose: before.placements,
    reservedBeforeClose: before.reserved,
    createdUnanswered: inflightCreated,
    sampled: sample.length,
    reservedAfterClose: after.reserved,
    placementsAfterClose: after.placements,
    problems,
  };
}

async function run(key, base, round) {
  const { name } = ALL[key];
  const label = `round ${round + 1} ${key}`;
  const runId = `r${round}${key}${Date.now()}`;
  const seq = { n: 0 };
  const bodies = [];
  let pre;
  if (ALL[key].switchboard) {
    const { body } = await json(`${base}/servers/${SERVER_ID}`);
    pre = { reserved: body.reserved, placements: body.placements };
  }
  log(`${label}: warm-up 2 s`);
  const warm = await drive(base, runId, seq, 2, bodies);
  log(`${label}: measuring ${duration} s with ${connections} connections`);
  const before = cpuSnapshot();
  const busyBefore = machineBusy();
  const started = process.hrtime.bigint();
  const r = await drive(base, runId, seq, duration, bodies);
  const after = cpuSnapshot();
  const busy = machineBusy() - busyBefore;
  const elapsedUs = Number(process.hrtime.bigint() - started) / 1e3;
  // CPU µs per request for each process that used any, to see where the time goes.
  const cpuPerRequest = {};
  const total = Math.max(1, r.requests.total);
  for (const k of Object.keys(after)) {
    const user = (after[k][0] - before[k][0]) / total;
    const system = (after[k][1] - before[k][1]) / total;
    if (user + system >= 1) cpuPerRequest[k] = { total: Math.round(user + system), system: Math.round(system) };
  }
  // CPU used by processes that are not part of this benchmark (other work on the machine), as a
  // share of one core: numbers measured while it is high are not comparable.
  let ours = 0;
  for (const k of Object.keys(after)) ours += after[k][0] - before[k][0] + after[k][1] - before[k][1];
  const foreignCores = Math.max(0, busy - ours) / elapsedUs;
  const errors = r.non2xx + r.errors + r.timeouts + warm.non2xx + warm.errors + warm.timeouts;
  const result = {
    key,
    name,
    round,
    rps: r.requests.average,
    requests: r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors,
    status: r.statusCodeStats,
    cpuPerRequest,
    foreignCores,
  };
  log(
    `${label}: ${Math.round(result.rps)} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, ${errors} non-2xx/errors; CPU µs/request ${JSON.stringify(cpuPerRequest)}; ` +
      `other processes used ${foreignCores.toFixed(2)} cores`,
  );
  if (ALL[key].switchboard) {
    result.leaks = await checkAndClose(base, runId, seq.n, bodies, label);
    if (pre.reserved !== 0 || pre.placements !== 0) result.leaks.problems.push(`before the run: reserved ${pre.reserved}, placements ${pre.placements}`);
    log(`${label}: ${result.leaks.rooms} rooms answered, ${result.leaks.createdUnanswered} created unanswered at stop; ${result.leaks.problems.length ? `PROBLEMS: ${result.leaks.problems.join('; ')}` : 'store consistent, all closed, reserved 0'}`);
  }
  return result;
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

async function bench() {
  const keys = selected();
  log(`runs: ${keys.join(', ')}; ${rounds} round(s) of ${duration} s at ${connections} connections`);
  const ports = {};
  for (const k of ['sfu', 'redis-server', ...keys]) ports[k] = await freePort();
  log('starting stand-in media server and the selected processes');
  start('sfu', process.execPath, ['-e', sfuScript], { PORT: String(ports.sfu) });
  await waitHttp(`http://127.0.0.1:${ports.sfu}/health`);
  const sfuEnv = { SFU_PORT: String(ports.sfu) };
  if (keys.includes('reference')) start('reference', process.execPath, ['-e', referenceScript], { PORT: String(ports.reference) });
  if (keys.includes('fastify-proxy')) start('fastify-proxy', process.execPath, ['-e', fastifyProxyScript], { ...sfuEnv, PORT: String(ports['fastify-proxy']) });
  if (keys.includes('http-proxy')) start('http-proxy', process.execPath, ['-e', httpProxyScript], { ...sfuEnv, PORT: String(ports['http-proxy']) });
  const sbEnv = { HOST: '127.0.0.1', LOG_LEVEL: 'warn', HEALTH_CHECK_INTERVAL: '600000' };
  // BENCH_CPU_PROF=1 writes a V8 CPU profile of each Switchboard process to bench/results/prof/.
  const node = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', 'bench/results/prof'] : [];
  if (keys.includes('memory')) start('switchboard-memory', process.execPath, [...node, 'bin/switchboard.js', 'serve'], { ...sbEnv, APP_PORT: String(ports.memory) });
  if (keys.includes('redis')) {
    start('redis-server', 'redis-server', ['--port', String(ports['redis-server']), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await new Promise((r) => setTimeout(r, 300));
    start('switchboard-redis', process.execPath, [...node, 'bin/switchboard.js', 'serve'], {
      ...sbEnv,
      APP_PORT: String(ports.redis),
      REDIS_URL: `redis://127.0.0.1:${ports['redis-server']}`,
    });
  }
  const base = (k) => `http://127.0.0.1:${ports[k]}`;
  await Promise.all(keys.map((k) => waitHttp(ALL[k].switchboard ? `${base(k)}/healthz` : `${base(k)}/`)));
  for (const k of keys.filter((x) => ALL[x].switchboard)) {
    const res = await fetch(`${base(k)}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ serverId: SERVER_ID, serviceUrl: `http://127.0.0.1:${ports.sfu}`, workers: 1, capacity: 1e9 }),
    });
    if (res.status !== 200) throw new Error(`register on ${k} failed: ${res.status}`);
  }

  // Rounds in alternating order (A B C D, then D C B A, ...), so that drift over the minutes of a
  // run (thermal, other tenants, Redis growth) falls on all runs alike.
  const results = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? keys : [...keys].reverse();
    log(`round ${round + 1}/${rounds}: ${order.join(' → ')}`);
    for (const k of order) results.push(await run(k, base(k), round));
  }

  // Per target: means over the rounds.
  const summary = keys.map((k) => {
    const rs = results.filter((r) => r.key === k);
    const cpu = {};
    for (const proc of new Set(rs.flatMap((r) => Object.keys(r.cpuPerRequest)))) cpu[proc] = Math.round(mean(rs.map((r) => r.cpuPerRequest[proc]?.total ?? 0)));
    return {
      key: k,
      name: ALL[k].name,
      rps: mean(rs.map((r) => r.rps)),
      rpsPerRound: rs.map((r) => Math.round(r.rps)),
      p50: mean(rs.map((r) => r.p50)),
      p99: mean(rs.map((r) => r.p99)),
      p99PerRound: rs.map((r) => r.p99),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      cpu,
      leakProblems: rs.flatMap((r) => r.leaks?.problems ?? []),
      rooms: rs.reduce((a, r) => a + (r.leaks?.rooms ?? 0), 0),
    };
  });
  const anchors = summary.filter((s) => ALL[s.key].anchor);
  const anchor = anchors.length ? anchors.reduce((a, b) => (b.rps > a.rps ? b : a)) : undefined;

  console.log('\nPer round (ratio to the stronger proxy anchor of the same round):');
  console.log('| round | run | req/s | p50 ms | p99 ms | non-2xx/errors | ratio | CPU µs per request | other load (cores) |');
  console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  for (let round = 0; round < rounds; round++) {
    const rs = results.filter((r) => r.round === round);
    const ra = rs.filter((r) => ALL[r.key].anchor).reduce((a, b) => (!a || b.rps > a.rps ? b : a), undefined);
    for (const r of rs) {
      const cpu = Object.entries(r.cpuPerRequest).map(([p, v]) => `${p} ${v.total}`).join(', ');
      console.log(`| ${round + 1} | ${r.name} | ${fmt(r.rps)} | ${r.p50} | ${r.p99} | ${r.errors} | ${ra ? `${(r.rps / ra.rps).toFixed(2)}×` : '–'} | ${cpu} | ${r.foreignCores.toFixed(2)} |`);
    }
  }

  console.log(`\nMeans over ${rounds} round(s); ratios against the stronger proxy anchor: ${anchor ? anchor.name : '(no anchor run)'}`);
  console.log('| run | req/s (per round) | p50 ms | p99 ms (per round) | non-2xx/errors | req/s ratio | p99 ratio | CPU µs per request |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const s of summary) {
    s.ratio = anchor ? s.rps / anchor.rps : undefined;
    s.p99Ratio = anchor ? s.p99 / anchor.p99 : undefined;
    const cpu = Object.entries(s.cpu).map(([p, v]) => `${p} ${v}`).join(', ');
    console.log(
      `| ${s.name} | ${fmt(s.rps)} (${s.rpsPerRound.map((x) => fmt(x)).join(', ')}) | ${fmt(s.p50, 1)} | ${fmt(s.p99, 1)} (${s.p99PerRound.join(', ')}) | ${s.errors} | ${s.ratio === undefined ? '–' : `${s.ratio.toFixed(2)}×`} | ${s.p99Ratio === undefined ? '–' : `${s.p99Ratio.toFixed(2)}×`} | ${cpu} |`,
    );
  }

  // Verdicts.
  const verdicts = [];
  const line = (ok, text) => {
    verdicts.push({ ok, text });
    console.log(`${ok ? 'PASS' : 'FAIL'}: ${text}`);
  };
  console.log('');
  for (const s of summary.filter((x) => ALL[x.key].switchboard)) {
    if (anchor) {
      line(s.ratio >= TARGETS[s.key], `${s.name}: ${s.ratio.toFixed(2)}× the ${anchor.name} req/s (target ≥ ${TARGETS[s.key]}×)`);
      line(s.p99 <= P99_FACTOR * anchor.p99, `${s.name}: p99 ${fmt(s.p99, 1)} ms = ${s.p99Ratio.toFixed(2)}× the anchor's ${fmt(anchor.p99, 1)} ms (target ≤ ${P99_FACTOR}×)`);
    }
    line(s.errors === 0, `${s.name}: ${s.errors} non-2xx/errors/timeouts (target 0)`);
    line(
      s.leakProblems.length === 0,
      `${s.name}: ${s.rooms} rooms placed; every one in the store once with ${UNITS_PER_ROOM} units, reserved = ${UNITS_PER_ROOM} × placements, 0 reserved after closing all` +
        (s.leakProblems.length ? ` — ${s.leakProblems.join('; ')}` : ''),
    );
  }
  for (const s of anchors) line(s.errors === 0, `${s.name}: ${s.errors} non-2xx/errors/timeouts`);

  const info = { ...machine(), duration, connections, rounds };
  console.log(`\n${JSON.stringify(info)}`);
  writeResults('rooms', { machine: info, anchor: anchor?.key, summary, results, verdicts });
}

main(bench);
