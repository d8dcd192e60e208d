// HTTP reverse proxy throughput and latency: Switchboard's proxy against HAProxy and nginx, in one
// run, on the same two nginx backends (100-byte body, keep-alive), driven by `wrk -t1 -c64`.
//   npm run build && npm run bench:proxy
//   --duration <s>   measured seconds per run (10)       --rounds <n>   rounds (3)
//   --warmup <s>     un-measured wrk run before each (2) --quick        3 s, 1 round, 1 s warm-up
//   --only <list>    runs to do, comma separated: haproxy, switchboard-1, switchboard-2, nginx, direct,
//                    node, pipe, http-floor, ws, switchboard-redis, switchboard-ratelimit-local, switchboard-ratelimit-redis
//                    (default: all but the last three; they come with --shared)
//   --shared         also measure what each shared option costs, each beside HAProxy runs and compared
//                    with switchboard-1 ("cost of shared options"); all single process, same backends:
//                      switchboard-redis            the Redis store (REDIS_URL to a redis-server the bench
//                                                   starts: --save '' --appendonly no, in its work dir)
//                      switchboard-ratelimit-local  a per-IP rate limit that never refuses, memory store
//                      switchboard-ratelimit-redis  the same limit with rateLimit.store: redis (shared
//                                                   buckets: one Lua call to Redis per request)
//                    Needs redis-server on PATH for the two Redis runs.
//   --ws-connections <n> (32), --ws-size <bytes> (32)
//   BENCH_SB_ARGS="--flag x"   extra arguments for `switchboard serve`; BENCH_SB_ENV='{"K":"v"}' extra env
//   BENCH_SB_BIN=path           script run instead of bin/switchboard.js (same arguments and env)
// This machine's speed drifts ±30 % between runs, so HAProxy runs are interleaved with the others
// and every run is compared with the mean of the HAProxy runs nearest before and after it.
// Targets (single process, features on): req/s ≥ 0.8× HAProxy's and p99 ≤ 2× HAProxy's.
// Needs wrk, nginx and haproxy on PATH (or /usr/sbin).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { children, freePort, log, machine, main, writeResults } from './lib.mjs';
import { pingPong } from './ws-relay.mjs';

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    shared: { type: 'boolean', default: false },
    'ws-connections': { type: 'string', default: '32' },
    'ws-size': { type: 'string', default: '32' },
  },
});
const duration = Number(argv.duration ?? (argv.quick ? 3 : 10));
const rounds = Number(argv.rounds ?? (argv.quick ? 1 : 3));
const warmup = Number(argv.warmup ?? (argv.quick ? 1 : 2));
const wsConnections = Number(argv['ws-connections']);
const wsSize = Number(argv['ws-size']);
const CONNECTIONS = 64;
const TARGET_RPS = 0.8;
const TARGET_P99 = 2;
const BODY = 'x'.repeat(99) + '\n'; // 100 bytes
if (Buffer.byteLength(BODY) !== 100) throw new Error('body must be 100 bytes');

const RUNS = {
  haproxy: { name: 'HAProxy (nbthread 1)' },
  'switchboard-1': { name: 'Switchboard, 1 process', switchboard: 1 },
  'switchboard-2': { name: 'Switchboard, 2 workers', switchboard: 2 },
  nginx: { name: 'nginx (1 worker)' },
  direct: { name: 'direct to a backend' },
  node: { name: 'node:http + undici Pool' },
  pipe: { name: 'node:net pipe, no HTTP (the floor of a Node proxy)' },
  'http-floor': { name: 'minimal HTTP proxy in Node (the floor of an HTTP proxy)' },
  // --shared: one shared option each, single process, compared with switchboard-1. `redis` needs the
  // bench's redis-server (REDIS_URL); `config` is written to a YAML file passed with --config-file (a
  // `proxy:` section turns the proxy on; the backends still come from --backends).
  'switchboard-redis': { name: 'Switchboard, 1 process, Redis store', switchboard: 1, shared: true, option: 'Redis store (REDIS_URL)', redis: true },
  'switchboard-ratelimit-local': {
    name: 'Switchboard, 1 process, per-IP rate limit (local)',
    switchboard: 1,
    shared: true,
    option: 'per-IP rate limit, local buckets (memory store)',
    config: 'proxy:\n  rateLimit:\n    perIp: { rate: 1000000000, burst: 1000000000 }\n',
  },
  'switchboard-ratelimit-redis': {
    name: 'Switchboard, 1 process, per-IP rate limit (Redis)',
    switchboard: 1,
    shared: true,
    option: 'per-IP rate limit, shared buckets (rateLimit.store: redis, REDIS_URL)',
    config: 'proxy:\n  rateLimit:\n    perIp: { rate: 1000000000, burst: 1000000000 }\n    store: redis\n',
    redis: true,
  },
};
const SHARED = Object.keys(RUNS).filter((k) => RUNS[k].shared);
const only = argv.only ? new Set(argv.only.split(',').map((s) => s.trim()).filter(Boolean)) : undefined;
for (const k of only ?? []) if (!(k in RUNS) && k !== 'ws') throw new Error(`--only: unknown run "${k}" (known: ${Object.keys(RUNS).join(', ')}, ws)`);
// The shared-option runs are left out by default; --shared adds them (--only names them itself).
const wanted = (k) => (only ? only.has(k) : !RUNS[k]?.shared || argv.shared);

// ---------------------------------------------------------------------------------------------
// Switchboard's command line: the one place to adjust when the proxy's flags or env change.
// PORT is the proxy's listener, APP_PORT the control-plane API.
function switchboardCommand({ workers, proxyPort, apiPort, backendsFile, configFile, env = {} }) {
  const extraArgs = (process.env.BENCH_SB_ARGS ?? '').split(/\s+/).filter(Boolean);
  const extraEnv = process.env.BENCH_SB_ENV ? JSON.parse(process.env.BENCH_SB_ENV) : {};
  return {
    args: [process.env.BENCH_SB_BIN ?? 'bin/switchboard.js', 'serve', '--backends', backendsFile, ...(configFile ? ['--config-file', configFile] : []), ...extraArgs],
    env: {
      HOST: '127.0.0.1',
      PORT: String(proxyPort),
      APP_PORT: String(apiPort),
      WORKER_COUNT: String(workers),
      HEALTH_CHECK_INTERVAL: '2000',
      LOG_LEVEL: 'warn',
      ...env,
      ...extraEnv,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Processes. Every process is in lib's `children` (killed on exit); descendants of Switchboard
// (cluster workers) are remembered here and killed too.
const descendants = new Set();
const killDescendants = () => {
  for (const pid of descendants) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
};
process.on('exit', killDescendants);
process.on('SIGTERM', () => process.exit(143));
let tmp;
process.on('exit', () => tmp && rmSync(tmp, { recursive: true, force: true }));

/** Like lib's start(), but keeps the last few KB of stderr (to say why a process failed). */
function spawnTracked(name, cmd, args, env = {}, { echoStderr = true } = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.name = name;
  child.stderrTail = '';
  child.stderr.on('data', (d) => {
    child.stderrTail = (child.stderrTail + d).slice(-4000);
    if (echoStderr) process.stderr.write(`[${name}] ${d}`);
  });
  child.on('error', (err) => (child.stderrTail += `\n${err.message}`));
  children.push(child);
  return child;
}

function stop(child) {
  const tree = treePids(child.pid);
  for (const pid of tree.reverse()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** pid and all its descendants (from /proc/<pid>/task/<tid>/children). */
function treePids(pid) {
  const out = [];
  const walk = (p) => {
    out.push(p);
    let tids = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tids) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        /* gone */
      }
      for (const c of kids.split(' ').filter(Boolean)) walk(Number(c));
    }
  };
  walk(pid);
  return out;
}

/** CPU µs used so far by pid and its live descendants (user + system). */
function treeCpu(pid) {
  let total = 0;
  for (const p of treePids(pid)) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      total += ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
    } catch {
      /* exited */
    }
  }
  return total;
}

/** CPU all processes on the machine have used so far, in µs (from /proc/stat). */
function machineBusy() {
  const [, user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return ((user + nice + system + irq + softirq) * 1e6) / 100;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until url answers 200; rejects early with the process's own words if it exits. */
async function waitOk(child, url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const said = child.stderrTail.trim().split('\n').slice(-3).join(' | ');
      throw new Error(`process exited (${child.exitCode ?? child.signalCode})${said ? `: ${said}` : ''}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err.cause?.code ?? err.message;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs / 1000} s (last: ${last})`);
    await sleep(200);
  }
}

/** Waits until a redis-server answers PING; rejects early with its own words if it exits. */
async function waitRedis(child, port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const said = child.stderrTail.trim().split('\n').slice(-3).join(' | ');
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode})${said ? `: ${said}` : ''}`);
    }
    try {
      const reply = await new Promise((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => s.write('PING\r\n'));
        let got = '';
        s.setTimeout(2000, () => s.destroy(new Error('timeout')));
        s.on('data', (d) => {
          got += d;
          if (got.includes('\r\n')) {
            s.destroy();
            resolve(got.trim());
          }
        });
        s.on('error', reject);
      });
      if (reply === '+PONG') return;
      last = reply;
    } catch (err) {
      last = err.code ?? err.message;
    }
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING within ${timeoutMs / 1000} s (last: ${last})`);
    await sleep(100);
  }
}

function which(cmd, fallbacks = []) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...fallbacks]) {
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  throw new Error(`${cmd} not found (apt-get install ${cmd === 'nginx' ? 'nginx-light' : cmd})`);
}

// ---------------------------------------------------------------------------------------------
// Configurations.
const nginxTemps = (dir) =>
  ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`).join('\n');

function nginxBackendsConf(dir, ports) {
  return `worker_processes 1;
master_process off;
daemon off;
pid ${dir}/backends.pid;
error_log ${dir}/backends-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
${nginxTemps(dir)}
  keepalive_requests 100000;
  keepalive_timeout 120s;
${ports.map((p) => `  server { listen 127.0.0.1:${p}; location / { default_type text/plain; return 200 "${BODY.trimEnd()}\\n"; } }`).join('\n')}
}
`;
}

function nginxProxyConf(dir, port, backends) {
  return `worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx-proxy.pid;
error_log ${dir}/nginx-proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
${nginxTemps(dir)}
  keepalive_requests 100000;
  keepalive_timeout 120s;
  upstream be {
${backends.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 64;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_connect_timeout 5s;
      proxy_read_timeout 30s;
    }
  }
}
`;
}

function haproxyConf({ webPort, backends, wsPort, echoPort }) {
  return `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 60s
  timeout tunnel 1h
frontend web
  bind 127.0.0.1:${webPort}
  option forwardfor
  default_backend nginx
backend nginx
  balance roundrobin
  http-reuse always
  option httpchk GET /
${backends.map((p, i) => `  server b${i + 1} 127.0.0.1:${p} check inter 2s`).join('\n')}
frontend ws
  bind 127.0.0.1:${wsPort}
  option forwardfor
  default_backend echo
backend echo
  option httpchk GET /
  server e1 127.0.0.1:${echoPort} check inter 2s
`;
}

// Plain Node anchor: node:http in, undici Pool out (round robin over the two backends), with
// X-Forwarded-For; no limits, metrics or health checks.
const nodeProxyScript = `
const http = require('node:http');
const { Pool } = require('undici');
const pools = process.env.BACKENDS.split(',').map((p) => new Pool('http://127.0.0.1:' + p, { connections: 64, keepAliveTimeout: 60000 }));
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);
let next = 0;
const server = http.createServer((req, res) => {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  const xff = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = xff ? xff + ', ' + req.socket.remoteAddress : req.socket.remoteAddress;
  const pool = pools[next++ % pools.length];
  pool.request({ path: req.url, method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
    .then(async (r) => {
      const body = Buffer.from(await r.body.arrayBuffer());
      const out = {};
      for (const [k, v] of Object.entries(r.headers)) if (!HOP.has(k)) out[k] = v;
      out['content-length'] = body.length;
      res.writeHead(r.statusCode, out);
      res.end(body);
    })
    .catch(() => { res.writeHead(502, { 'content-length': 0 }); res.end(); });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

// The floor of any proxy written in Node here: node:net in and out, no HTTP at all. Each client
// read is taken to be one whole request and each backend read one whole answer (true for this
// benchmark's small GETs and 100-byte answers, and nothing else): bytes are forwarded untouched
// over pooled keep-alive backend sockets read with `onread` into one buffer, round robin, one
// request in flight per client connection. Its CPU per request is Node's own I/O cost: two reads,
// two writes and the event loop around them; what Switchboard spends above it is HTTP work.
const pipeProxyScript = `
const net = require('node:net');
const BUF = Buffer.allocUnsafe(65536);
const ports = process.env.BACKENDS.split(',').map(Number);
const idle = ports.map(() => []);
let next = 0;
function take(i) {
  const c = idle[i].pop();
  if (c) return c;
  const b = net.connect({ host: '127.0.0.1', port: ports[i], onread: { buffer: BUF, callback(n, buf) {
    const client = b.client;
    b.client = null;
    idle[i].push(b);
    if (client) client.write(Buffer.from(buf.subarray(0, n)));
    return true;
  } } });
  b.setNoDelay(true);
  b.on('error', () => {});
  return b;
}
net.createServer({ noDelay: true }, (c) => {
  c.on('data', (d) => {
    const b = take(next++ % ports.length);
    b.client = c;
    b.write(d);
  });
  c.on('error', () => {});
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

// ---------------------------------------------------------------------------------------------
// wrk.
const UNIT = { us: 1e-3, ms: 1, s: 1e3 };
const toMs = (v, u) => Number(v) * UNIT[u];

export function parseWrk(out) {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p = (q) => {
    const m = new RegExp(`^\\s*${q}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1], m[2]) : NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (!rps) throw new Error(`could not parse wrk output:\n${out}`);
  return {
    rps: Number(rps[1]),
    requests: total ? Number(total[1]) : NaN,
    p50: p(50),
    p75: p(75),
    p90: p(90),
    p99: p(99),
    socketErrors: sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

/** One wrk run. Run through sh so that the shell's cutime/cstime (from /proc) give wrk's CPU. */
function wrk(url, seconds) {
  // wrk runs in the background so its pid is known (killed on exit with the rest); `wait` reaps it
  // before the shell reads its own cutime/cstime.
  const script = 'wrk "$@" & echo "@@PID $!"; wait $!; rc=$?; echo "@@STAT $(cat /proc/$$/stat)"; exit $rc';
  const args = ['-c', script, 'sh', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '--timeout', '5s', url];
  return new Promise((resolve, reject) => {
    const child = spawn('sh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    let wrkPid;
    child.stdout.on('data', (d) => {
      out += d;
      if (!wrkPid && /@@PID (\d+)/.test(out)) descendants.add((wrkPid = Number(/@@PID (\d+)/.exec(out)[1])));
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      children.splice(children.indexOf(child), 1);
      descendants.delete(wrkPid);
      const stat = /@@STAT (.*)/.exec(out)?.[1];
      let wrkCpuUs = NaN;
      if (stat) {
        const f = stat.split(') ')[1].split(' ');
        wrkCpuUs = ((Number(f[13]) + Number(f[14])) * 1e6) / 100; // cutime + cstime: the waited-for wrk
      }
      if (code !== 0) return reject(new Error(`wrk exited ${code}: ${err || out}`));
      try {
        resolve({ ...parseWrk(out), wrkCpuUs });
      } catch (e) {
        reject(e);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fmt = (x, d = 0) => (x === undefined || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');

async function bench() {
  const wrkBin = which('wrk');
  const nginxBin = which('nginx', ['/usr/sbin']);
  const haproxyBin = which('haproxy', ['/usr/sbin']);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'sb-bench-proxy-'));
  log(`wrk ${wrkBin}, nginx ${nginxBin}, haproxy ${haproxyBin}; work dir ${tmp}`);
  log(`${rounds} round(s) of ${duration} s per run (+${warmup} s warm-up), wrk -t1 -c${CONNECTIONS}`);

  const ports = {};
  for (const k of ['b1', 'b2', 'haproxy', 'haproxyWs', 'nginx', 'node', 'pipe', 'httpFloor', 'echo', 'sb1', 'sb1api', 'sb2', 'sb2api', 'sbws', 'sbwsapi', 'redis', ...SHARED.flatMap((s) => [s, `${s}-api`])]) ports[k] = await freePort();
  const backends = [ports.b1, ports.b2];

  // The processes under test; their CPU is read from /proc around each run.
  const procs = {};
  log(`starting the two nginx backends on ${backends.join(', ')} (one nginx process, ${BODY.length}-byte body)`);
  writeFileSync(`${tmp}/backends.conf`, nginxBackendsConf(tmp, backends));
  procs.backends = spawnTracked('backends', nginxBin, ['-p', tmp, '-c', `${tmp}/backends.conf`, '-e', `${tmp}/backends-error.log`]);
  await Promise.all(backends.map((p) => waitOk(procs.backends, `http://127.0.0.1:${p}/`, 10_000)));
  const probe = await fetch(`http://127.0.0.1:${ports.b1}/`);
  const probeBody = await probe.text();
  if (Buffer.byteLength(probeBody) !== 100) throw new Error(`backend body is ${Buffer.byteLength(probeBody)} bytes, not 100`);

  const wsWanted = wanted('ws');
  if (wsWanted) {
    log(`starting the WebSocket echo server on ${ports.echo}`);
    procs.echo = spawnTracked('ws-echo', process.execPath, ['bench/ws-relay.mjs', 'echo', String(ports.echo)]);
  }
  if (wanted('haproxy') || wsWanted) {
    log(`starting HAProxy (nbthread 1) on ${ports.haproxy} (HTTP) and ${ports.haproxyWs} (WebSocket)`);
    writeFileSync(`${tmp}/haproxy.cfg`, haproxyConf({ webPort: ports.haproxy, backends, wsPort: ports.haproxyWs, echoPort: ports.echo }));
    execFileSync(haproxyBin, ['-c', '-q', '-f', `${tmp}/haproxy.cfg`], { stdio: 'inherit' });
    procs.haproxy = spawnTracked('haproxy', haproxyBin, ['-db', '-f', `${tmp}/haproxy.cfg`], {}, { echoStderr: false });
  }
  if (wanted('nginx')) {
    log(`starting nginx (1 worker, upstream keepalive 64) on ${ports.nginx}`);
    writeFileSync(`${tmp}/nginx-proxy.conf`, nginxProxyConf(tmp, ports.nginx, backends));
    procs.nginx = spawnTracked('nginx', nginxBin, ['-p', tmp, '-c', `${tmp}/nginx-proxy.conf`, '-e', `${tmp}/nginx-proxy-error.log`]);
  }
  if (wanted('pipe')) {
    log(`starting the node:net pipe (no HTTP) on ${ports.pipe}`);
    procs.pipe = spawnTracked('pipe-proxy', process.execPath, ['-e', pipeProxyScript], { PORT: String(ports.pipe), BACKENDS: backends.join(',') });
  }
  if (wanted('http-floor')) {
    log(`starting the minimal HTTP proxy (bench/http-floor-proxy.mjs) on ${ports.httpFloor}`);
    procs['http-floor'] = spawnTracked('http-floor', process.execPath, ['bench/http-floor-proxy.mjs'], { PORT: String(ports.httpFloor), BACKENDS: backends.join(',') });
  }
  if (wanted('node')) {
    log(`starting the node:http + undici proxy on ${ports.node}`);
    procs.node = spawnTracked('node-proxy', process.execPath, ['-e', nodeProxyScript], { PORT: String(ports.node), BACKENDS: backends.join(',') });
  }

  // Switchboard: started as processes; a missing proxy, flag or dist/ makes its rows "not available".
  const unavailable = {};

  // The Redis the shared-option runs use: a throwaway redis-server in the work dir, nothing saved.
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;
  if (SHARED.some((k) => RUNS[k].redis && wanted(k))) {
    let redisBin;
    try {
      redisBin = which('redis-server', ['/usr/sbin', '/usr/local/bin']);
    } catch (err) {
      for (const k of SHARED) if (RUNS[k].redis && wanted(k)) unavailable[k] = err.message;
    }
    if (redisBin) {
      log(`starting redis-server on ${ports.redis} (--save '' --appendonly no, dir ${tmp})`);
      procs.redis = spawnTracked('redis', redisBin, ['--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], {}, { echoStderr: true });
      try {
        await waitRedis(procs.redis, ports.redis, 10_000);
      } catch (err) {
        for (const k of SHARED) if (RUNS[k].redis && wanted(k)) unavailable[k] = err.message;
        stop(procs.redis);
        delete procs.redis;
      }
    }
  }

  const sbTargets = [
    ['switchboard-1', 1, ports.sb1, ports.sb1api, backends],
    ['switchboard-2', 2, ports.sb2, ports.sb2api, backends],
    ...SHARED.map((k) => [k, 1, ports[k], ports[`${k}-api`], backends]),
    ...(wsWanted ? [['switchboard-ws', 1, ports.sbws, ports.sbwsapi, [ports.echo]]] : []),
  ].filter(([k]) => k === 'switchboard-ws' || wanted(k));
  const sbCommands = {};
  for (const [key, workers, proxyPort, apiPort, bes] of sbTargets) {
    const backendsFile = `${tmp}/${key}-backends.json`;
    writeFileSync(backendsFile, JSON.stringify({ backends: bes.map((port) => ({ host: '127.0.0.1', port })) }));
    let configFile;
    if (RUNS[key]?.config) writeFileSync((configFile = `${tmp}/${key}.yaml`), RUNS[key].config);
    // Each Redis run gets its own key prefix, so the two instances on the one redis-server are not
    // one cluster sharing state.
    const redisEnv = RUNS[key]?.redis ? { REDIS_URL: redisUrl, REDIS_PREFIX: `bench-${key}` } : {};
    const cmd = switchboardCommand({ workers, proxyPort, apiPort, backendsFile, configFile, env: redisEnv });
    sbCommands[key] = { args: cmd.args, env: cmd.env, backends: bes, ...(configFile ? { config: RUNS[key].config } : {}) };
    if (unavailable[key]) continue;
    if (!process.env.BENCH_SB_BIN && !existsSync('dist/cli/main.js')) {
      unavailable[key] = 'dist/ is missing: run `npm run build`';
      continue;
    }
    log(`starting ${key}: ${Object.entries(cmd.env).map(([k, v]) => `${k}=${v}`).join(' ')} node ${cmd.args.join(' ')}${configFile ? ` (${path.basename(configFile)}: ${JSON.stringify(RUNS[key].config)})` : ''}`);
    procs[key] = spawnTracked(key, process.execPath, cmd.args, cmd.env);
  }

  // Readiness: every anchor answers 200; Switchboard answers 200 through its proxy port (so its
  // backends passed a health check).
  const readyUrl = {
    direct: `http://127.0.0.1:${ports.b1}/`,
    haproxy: `http://127.0.0.1:${ports.haproxy}/`,
    nginx: `http://127.0.0.1:${ports.nginx}/`,
    node: `http://127.0.0.1:${ports.node}/`,
    pipe: `http://127.0.0.1:${ports.pipe}/`,
    'http-floor': `http://127.0.0.1:${ports.httpFloor}/`,
    'switchboard-1': `http://127.0.0.1:${ports.sb1}/`,
    'switchboard-2': `http://127.0.0.1:${ports.sb2}/`,
    'switchboard-ws': `http://127.0.0.1:${ports.sbws}/`,
    ...Object.fromEntries(SHARED.map((k) => [k, `http://127.0.0.1:${ports[k]}/`])),
  };
  if (procs.echo) await waitOk(procs.echo, `http://127.0.0.1:${ports.echo}/`, 10_000);
  await Promise.all(
    Object.keys(procs)
      .filter((k) => readyUrl[k])
      .map(async (k) => {
        try {
          await waitOk(procs[k], readyUrl[k], RUNS[k]?.switchboard || k === 'switchboard-ws' ? 30_000 : 10_000);
          if (k.startsWith('switchboard')) for (const pid of treePids(procs[k].pid)) descendants.add(pid);
        } catch (err) {
          if (!k.startsWith('switchboard')) throw new Error(`${k}: ${err.message}`);
          unavailable[k] = err.message;
          stop(procs[k]);
          delete procs[k];
        }
      }),
  );
  if (procs.haproxy && wsWanted) await waitOk(procs.haproxy, `http://127.0.0.1:${ports.haproxyWs}/`, 10_000);
  for (const [k, why] of Object.entries(unavailable)) log(`${k}: not available (${why})`);
  log(`ready: ${Object.keys(procs).join(', ')}`);

  // Order per round: every Switchboard run has HAProxy runs on both sides.
  const sbAvail = (k) => wanted(k) && procs[k];
  const order = [];
  if (wanted('haproxy')) order.push('haproxy');
  // The pipe and the HTTP floor too: they are the anchors Switchboard's number is read against, so
  // they get HAProxy on both sides.
  const anchor = (k) => k === 'pipe' || k === 'http-floor';
  for (const k of ['switchboard-1', 'pipe', 'http-floor', 'switchboard-2', ...SHARED]) if (anchor(k) ? wanted(k) : sbAvail(k)) order.push(k, ...(wanted('haproxy') ? ['haproxy'] : []));
  for (const k of ['nginx', 'direct', 'node']) if (wanted(k)) order.push(k);
  const urlOf = (k) => readyUrl[k];

  const results = [];
  const seq = []; // every run in the order it ran, across rounds (for the HAProxy neighbours)
  for (let round = 0; round < rounds; round++) {
    log(`round ${round + 1}/${rounds}: ${order.join(' → ')}`);
    for (const key of order) {
      const label = `round ${round + 1} ${key}`;
      if (warmup > 0) await wrk(urlOf(key), warmup);
      const before = Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, treeCpu(c.pid)]));
      const busy0 = machineBusy();
      const own0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const r = await wrk(urlOf(key), duration);
      const elapsedUs = Number(process.hrtime.bigint() - t0) / 1e3;
      const busy = machineBusy() - busy0;
      const own = process.cpuUsage(own0);
      const cpuUs = {};
      for (const [k, c] of Object.entries(procs)) cpuUs[k] = treeCpu(c.pid) - before[k];
      cpuUs.wrk = r.wrkCpuUs;
      cpuUs.harness = own.user + own.system;
      const ours = Object.values(cpuUs).reduce((a, x) => a + (Number.isFinite(x) ? x : 0), 0);
      const cpuPerRequest = {};
      const n = Math.max(1, r.requests);
      for (const [k, v] of Object.entries(cpuUs)) if (v / n >= 0.5) cpuPerRequest[k] = Math.round(v / n);
      const result = {
        key,
        name: RUNS[key].name,
        round,
        index: seq.length,
        ...r,
        errors: r.socketErrors + r.non2xx,
        cpuPerRequest,
        proxyCpuUsPerRequest: procs[key] ? cpuUs[key] / n : undefined,
        proxyCores: procs[key] ? cpuUs[key] / elapsedUs : undefined,
        redisCpuUsPerRequest: procs.redis ? cpuUs.redis / n : undefined,
        foreignCores: Math.max(0, busy - ours) / elapsedUs,
      };
      seq.push(result);
      results.push(result);
      log(
        `${label}: ${fmt(r.rps)} req/s, p50 ${fmt(r.p50, 2)} ms, p99 ${fmt(r.p99, 2)} ms, ${result.errors} errors${r.non2xx ? ` (${r.non2xx} non-2xx responses)` : ''}; ` +
          `CPU µs/request ${Object.entries(cpuPerRequest).map(([k, v]) => `${k} ${v}`).join(', ')}; other processes ${result.foreignCores.toFixed(2)} cores`,
      );
    }
  }

  // Ratio of each run to the mean of the HAProxy runs nearest before and after it.
  const hap = seq.filter((r) => r.key === 'haproxy');
  for (const r of seq) {
    if (r.key === 'haproxy' || !hap.length) continue;
    const prev = [...hap].reverse().find((h) => h.index < r.index);
    const next = hap.find((h) => h.index > r.index);
    const near = [prev, next].filter(Boolean);
    r.haproxyNeighbours = near.map((h) => h.index);
    r.rpsRatio = r.rps / mean(near.map((h) => h.rps));
    r.p50Ratio = r.p50 / mean(near.map((h) => h.p50));
    r.p99Ratio = r.p99 / mean(near.map((h) => h.p99));
  }

  const keys = [...new Set(order)];
  for (let round = 0; round < rounds; round++) {
    console.log(`\nRound ${round + 1} (ratios against the mean of the HAProxy runs before and after):`);
    console.log('| # | run | req/s | p50 ms | p99 ms | errors | req/s ratio | p50 ratio | p99 ratio | proxy CPU µs/req | proxy cores | other load (cores) |');
    console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of results.filter((x) => x.round === round)) {
      console.log(
        `| ${r.index + 1} | ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} | ${ratio(r.rpsRatio)} | ${ratio(r.p50Ratio)} | ${ratio(r.p99Ratio)} | ${fmt(r.proxyCpuUsPerRequest, 1)} | ${fmt(r.proxyCores, 2)} | ${r.foreignCores.toFixed(2)} |`,
      );
    }
  }

  const summary = keys.map((k) => {
    const rs = results.filter((r) => r.key === k);
    return {
      key: k,
      name: RUNS[k].name,
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      rpsRatio: median(rs.map((r) => r.rpsRatio)),
      p50Ratio: median(rs.map((r) => r.p50Ratio)),
      p99Ratio: median(rs.map((r) => r.p99Ratio)),
      proxyCpuUsPerRequest: median(rs.map((r) => r.proxyCpuUsPerRequest)),
      backendsCpuUsPerRequest: median(rs.map((r) => r.cpuPerRequest.backends ?? 0)),
      redisCpuUsPerRequest: median(rs.map((r) => r.redisCpuUsPerRequest)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      rpsPerRound: rs.map((r) => Math.round(r.rps)),
    };
  });
  console.log(`\nSummary: medians over ${rounds} round(s); ratios are medians of the per-run ratios to the neighbouring HAProxy runs`);
  console.log('| run | req/s (per run) | p50 ms | p99 ms | req/s ratio | p50 ratio | p99 ratio | proxy CPU µs/req | backends CPU µs/req | errors |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of summary) {
    console.log(
      `| ${s.name} | ${fmt(s.rps)} (${s.rpsPerRound.map((x) => fmt(x)).join(', ')}) | ${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${s.key === 'haproxy' ? '1.00×' : ratio(s.rpsRatio)} | ${s.key === 'haproxy' ? '1.00×' : ratio(s.p50Ratio)} | ${s.key === 'haproxy' ? '1.00×' : ratio(s.p99Ratio)} | ${fmt(s.proxyCpuUsPerRequest, 1)} | ${fmt(s.backendsCpuUsPerRequest, 1)} | ${s.errors} |`,
    );
  }
  for (const k of ['switchboard-1', 'switchboard-2', ...SHARED]) if (wanted(k) && unavailable[k]) console.log(`| ${RUNS[k].name} | not available (${unavailable[k]}) | | | | | | | | |`);
  const loaded = results.filter((r) => r.foreignCores > 0.25);
  if (loaded.length) console.log(`\nWARNING: other processes used > 0.25 cores during ${loaded.length} of ${results.length} runs (${loaded.map((r) => `#${r.index + 1}`).join(', ')}): those numbers are not comparable; rerun on a quiet machine.`);

  // Cost of each shared option: its run against switchboard-1's in the same round (both are single
  // process on the same backends), medians over the rounds. "HAProxy-normalised" divides the two
  // runs' ratios to their neighbouring HAProxy runs instead (less sensitive to drift between them).
  const costs = [];
  const sharedRan = SHARED.filter((k) => wanted(k) && procs[k]);
  if (sharedRan.length) {
    console.log(`\nCost of shared options (against ${RUNS['switchboard-1'].name}; medians over ${rounds} round(s) of the per-round comparison):`);
    if (!procs['switchboard-1']) console.log(`- not computed: ${RUNS['switchboard-1'].name} did not run${unavailable['switchboard-1'] ? ` (${unavailable['switchboard-1']})` : ' (add switchboard-1 to --only)'}`);
  }
  for (const k of procs['switchboard-1'] ? sharedRan : []) {
    const pairs = [];
    for (let round = 0; round < rounds; round++) {
      const a = results.find((r) => r.key === k && r.round === round);
      const b = results.find((r) => r.key === 'switchboard-1' && r.round === round);
      if (a && b) pairs.push([a, b]);
    }
    const c = {
      key: k,
      option: RUNS[k].option,
      rounds: pairs.length,
      rps: median(pairs.map(([a]) => a.rps)),
      baseRps: median(pairs.map(([, b]) => b.rps)),
      rpsRelative: median(pairs.map(([a, b]) => a.rps / b.rps)),
      rpsRelativeHaproxyNormalised: median(pairs.map(([a, b]) => a.rpsRatio / b.rpsRatio)),
      cpuUsPerRequest: median(pairs.map(([a]) => a.proxyCpuUsPerRequest)),
      baseCpuUsPerRequest: median(pairs.map(([, b]) => b.proxyCpuUsPerRequest)),
      cpuRelative: median(pairs.map(([a, b]) => a.proxyCpuUsPerRequest / b.proxyCpuUsPerRequest)),
      cpuExtraUsPerRequest: median(pairs.map(([a, b]) => a.proxyCpuUsPerRequest - b.proxyCpuUsPerRequest)),
      p99Relative: median(pairs.map(([a, b]) => a.p99 / b.p99)),
      redisCpuUsPerRequest: RUNS[k].redis ? median(pairs.map(([a]) => a.redisCpuUsPerRequest)) : undefined,
      errors: pairs.reduce((n, [a]) => n + a.errors, 0),
    };
    costs.push(c);
    const pct = (x) => (Number.isFinite(x) ? `${x >= 1 ? '+' : '−'}${Math.abs((x - 1) * 100).toFixed(0)} %` : '–');
    const signed = (x) => (Number.isFinite(x) ? `${x >= 0 ? '+' : '−'}${fmt(Math.abs(x), 1)}` : '–');
    console.log(
      `- cost of shared option ${c.option}: req/s ${fmt(c.rps)} vs ${fmt(c.baseRps)} = ${ratio(c.rpsRelative)} (${pct(c.rpsRelative)}; HAProxy-normalised ${ratio(c.rpsRelativeHaproxyNormalised)}), ` +
        `Switchboard CPU µs/request ${fmt(c.cpuUsPerRequest, 1)} vs ${fmt(c.baseCpuUsPerRequest, 1)} = ${ratio(c.cpuRelative)} (${signed(c.cpuExtraUsPerRequest)} µs)` +
        `${RUNS[k].redis ? `, redis-server CPU µs/request ${fmt(c.redisCpuUsPerRequest, 1)}` : ''}, p99 ${ratio(c.p99Relative)}, ${c.errors} errors`,
    );
  }

  // Verdicts: the targets are for the single process; the 2-worker run is reported the same way.
  const verdicts = [];
  const verdict = (ok, text) => {
    verdicts.push({ ok, text });
    console.log(`${ok === undefined ? 'N/A ' : ok ? 'PASS' : 'FAIL'}: ${text}`);
  };
  console.log('');
  for (const k of ['switchboard-1', 'switchboard-2']) {
    if (!wanted(k)) continue;
    const tag = k === 'switchboard-1' ? '' : ' (informative; the target is for the single process)';
    if (unavailable[k]) {
      verdict(undefined, `${RUNS[k].name}: not available (${unavailable[k]})`);
      continue;
    }
    const s = summary.find((x) => x.key === k);
    if (!wanted('haproxy')) continue;
    verdict(s.rpsRatio >= TARGET_RPS, `${s.name}: req/s ${s.rpsRatio.toFixed(2)}× HAProxy's (target ≥ ${TARGET_RPS}×)${tag}`);
    verdict(s.p99Ratio <= TARGET_P99, `${s.name}: p99 ${s.p99Ratio.toFixed(2)}× HAProxy's (target ≤ ${TARGET_P99}×)${tag}`);
    verdict(s.errors === 0, `${s.name}: ${s.errors} socket errors / non-2xx (target 0)`);
  }
  // Shared options: informative (see "cost of shared options"), but a refused request (the rate limit
  // answers 429) or a socket error is a failure: the limit is set never to refuse.
  for (const k of SHARED) {
    if (!wanted(k)) continue;
    if (unavailable[k]) {
      verdict(undefined, `${RUNS[k].name}: not available (${unavailable[k]})`);
      continue;
    }
    const s = summary.find((x) => x.key === k);
    if (s) verdict(s.errors === 0, `${s.name}: ${s.errors} socket errors / non-2xx (target 0)`);
  }
  for (const s of summary.filter((x) => !RUNS[x.key].switchboard)) if (s.errors) verdict(false, `${s.name}: ${s.errors} socket errors / non-2xx`);
  // The anchors the target is read against: what Node reaches with no HTTP at all, and with HTTP and
  // nothing else (informative: they say where the floor is on this machine today).
  for (const s of summary.filter((x) => x.key === 'pipe' || x.key === 'http-floor')) {
    const sb = summary.find((x) => x.key === 'switchboard-1');
    console.log(
      `ANCHOR: ${s.name}: req/s ${ratio(s.rpsRatio)} HAProxy's at ${fmt(s.proxyCpuUsPerRequest, 1)} CPU µs/request` +
        (sb ? `; Switchboard, 1 process: ${ratio(sb.rpsRatio)} at ${fmt(sb.proxyCpuUsPerRequest, 1)} µs (${fmt(sb.proxyCpuUsPerRequest - s.proxyCpuUsPerRequest, 1)} µs more)` : ''),
    );
  }

  // WebSocket messages relayed: direct, through HAProxy, through Switchboard; HAProxy alternated.
  let ws;
  if (wsWanted) {
    const wsTargets = { direct: ports.echo, haproxy: ports.haproxyWs };
    if (procs['switchboard-ws']) wsTargets.switchboard = ports.sbws;
    const wsOrder = procs['switchboard-ws'] ? ['haproxy', 'switchboard', 'haproxy', 'direct'] : ['haproxy', 'direct'];
    const wsProc = { direct: 'echo', haproxy: 'haproxy', switchboard: 'switchboard-ws' };
    ws = { connections: wsConnections, size: wsSize, seconds: duration, runs: [] };
    log(`WebSocket relay: ${wsConnections} connections, ${wsSize}-byte messages, ping-pong, ${duration} s per run; order per round: ${wsOrder.join(' → ')}`);
    if (unavailable['switchboard-ws']) log(`switchboard-ws: not available (${unavailable['switchboard-ws']})`);
    for (let round = 0; round < rounds; round++) {
      for (const key of wsOrder) {
        const before = Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, treeCpu(c.pid)]));
        const r = await pingPong({ port: wsTargets[key], connections: wsConnections, seconds: duration, warmupSeconds: warmup, size: wsSize });
        const p = wsProc[key];
        const proxyCpu = treeCpu(procs[p].pid) - before[p];
        const echoCpu = treeCpu(procs.echo.pid) - before.echo;
        const run = { key, round, index: ws.runs.length, ...r, proxyCpuUsPerMessage: key === 'direct' ? undefined : proxyCpu / Math.max(1, r.messages), echoCpuUsPerMessage: echoCpu / Math.max(1, r.messages), clientCpuUsPerMessage: r.clientCpuUs / Math.max(1, r.messages) };
        ws.runs.push(run);
        log(`ws round ${round + 1} ${key}: ${fmt(r.rate)} messages/s (round trips), p50 ${fmt(r.p50, 2)} ms, p99 ${fmt(r.p99, 2)} ms, ${r.errors} errors; proxy CPU µs/message ${fmt(run.proxyCpuUsPerMessage, 1)}`);
      }
    }
    const hapRuns = ws.runs.filter((r) => r.key === 'haproxy');
    for (const r of ws.runs.filter((x) => x.key !== 'haproxy')) {
      const prev = [...hapRuns].reverse().find((h) => h.index < r.index);
      const next = hapRuns.find((h) => h.index > r.index);
      r.rateRatio = r.rate / mean([prev, next].filter(Boolean).map((h) => h.rate));
    }
    ws.summary = Object.keys(wsTargets).map((k) => {
      const rs = ws.runs.filter((r) => r.key === k);
      return { key: k, rate: median(rs.map((r) => r.rate)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), rateRatio: k === 'haproxy' ? 1 : median(rs.map((r) => r.rateRatio)), proxyCpuUsPerMessage: median(rs.map((r) => r.proxyCpuUsPerMessage)), errors: rs.reduce((a, r) => a + r.errors, 0) };
    });
    console.log(`\nWebSocket relay (${wsConnections} connections, ${wsSize}-byte messages, ping-pong; medians over ${rounds} round(s)):`);
    console.log('| path | messages/s | p50 ms | p99 ms | ratio to HAProxy | proxy CPU µs/message | errors |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const s of ws.summary) console.log(`| ${s.key} | ${fmt(s.rate)} | ${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${ratio(s.rateRatio)} | ${fmt(s.proxyCpuUsPerMessage, 1)} | ${s.errors} |`);
    if (unavailable['switchboard-ws']) console.log(`| switchboard | not available (${unavailable['switchboard-ws']}) | | | | | |`);
  }

  let info;
  try {
    info = machine();
  } catch {
    info = { node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length };
  }
  const versions = {
    wrk: firstLine(wrkBin, ['--version']),
    nginx: firstLine(nginxBin, ['-v']),
    haproxy: firstLine(haproxyBin, ['-v']),
  };
  Object.assign(info, versions, { duration, warmup, rounds, connections: CONNECTIONS, bodyBytes: 100 });
  console.log(`\n${JSON.stringify(info)}`);
  writeResults('proxy', { machine: info, order, switchboard: sbCommands, unavailable, summary, costs, results, verdicts, ws });
  for (const c of Object.values(procs)) stop(c);
}

/** First line a tool prints about its version (nginx -v writes to stderr, wrk --version exits 1). */
function firstLine(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0].trim();
}

main(bench);
