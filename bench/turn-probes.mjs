// Probe cost: BENCH_ENDPOINTS (1,000) TURN servers, each a real UDP STUN responder on its own
// loopback address, health-checked every second by one `switchboard serve` with STUN probes.
// Reports the CPU one probe round costs and the probe latency percentiles, beside an idle
// Switchboard measured over the same seconds.
//   npm run build && npm run bench:turn-probes     (BENCH_ENDPOINTS=1000 BENCH_DURATION=30)
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { cpuOf, freePort, log, machine, main, start, waitHttp, writeResults } from './lib.mjs';

const endpoints = Number(process.env.BENCH_ENDPOINTS ?? 1000);
const duration = Number(process.env.BENCH_DURATION ?? 30);
const intervalSeconds = Number(process.env.BENCH_INTERVAL ?? 1);
const TURN_PORT = 3478;

// Distinct loopback addresses (all of 127/8 is loopback on Linux), one TURN server each.
const address = (i) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;

// The endpoints: one UDP socket per address answering STUN Binding requests (RFC 8489) with a
// success response carrying XOR-MAPPED-ADDRESS, as coturn's listener does.
const responderScript = `
const dgram = require('node:dgram');
const n = Number(process.env.ENDPOINTS);
let bound = 0;
for (let i = 0; i < n; i++) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => {
    if (m.length < 20 || m.readUInt16BE(0) !== 0x0001 || m.readUInt32BE(4) !== 0x2112a442) return;
    const out = Buffer.alloc(32);
    out.writeUInt16BE(0x0101, 0); out.writeUInt16BE(12, 2); out.writeUInt32BE(0x2112a442, 4);
    m.copy(out, 8, 8, 20);
    out.writeUInt16BE(0x0020, 20); out.writeUInt16BE(8, 22); out.writeUInt16BE(0x0001, 24);
    out.writeUInt16BE(r.port ^ 0x2112, 26);
    r.address.split('.').forEach((x, k) => (out[28 + k] = Number(x) ^ [0x21, 0x12, 0xa4, 0x42][k]));
    s.send(out, r.port, r.address);
  });
  s.bind(${TURN_PORT}, '127.1.' + Math.floor(i / 250) + '.' + ((i % 250) + 1), () => { if (++bound === n) console.error('responders bound: ' + n); });
}
`;

async function metrics(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const buckets = [];
  let count = 0;
  let failed = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('switchboard_probe_duration_seconds') || !line.includes('pool="turn"')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const ok = line.includes('result="ok"');
    if (line.startsWith('switchboard_probe_duration_seconds_bucket') && ok) buckets.push([le === '+Inf' ? Infinity : Number(le), value]);
    if (line.startsWith('switchboard_probe_duration_seconds_count')) {
      count += value;
      if (!ok) failed += value;
    }
  }
  return { buckets, count, failed };
}

/** A quantile from the difference of two cumulative histograms, interpolated within its bucket. */
function quantile(before, after, q) {
  const diff = after.buckets.map(([le, v], i) => [le, v - (before.buckets[i]?.[1] ?? 0)]);
  const total = diff.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, v] of diff) {
    if (v >= rank) return le === Infinity ? lower : lower + ((rank - below) / Math.max(1, v - below)) * (le - lower);
    lower = le;
    below = v;
  }
  return lower;
}

async function bench() {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
  const config = {
    logLevel: 'warn',
    ...(process.env.BENCH_CONCURRENCY ? { health: { concurrency: Number(process.env.BENCH_CONCURRENCY) } } : {}),
    turn: {
      servers: Array.from({ length: endpoints }, (_, i) => ({ host: address(i) })),
      port: TURN_PORT,
      healthCheck: { intervalSeconds, timeoutSeconds: 1, protocol: 'stun', successThreshold: 1, failureThreshold: 3 },
    },
  };
  writeFileSync(join(dir, 'turn.yaml'), stringify(config));
  writeFileSync(join(dir, 'idle.yaml'), stringify({ logLevel: 'warn' }));
  const [port, idlePort] = await Promise.all([freePort(), freePort()]);

  log(`starting ${endpoints} STUN responders on 127.1.x.y:${TURN_PORT}`);
  const responders = start('responders', process.execPath, ['-e', responderScript], { ENDPOINTS: String(endpoints) });
  await new Promise((r) => setTimeout(r, 500 + endpoints));
  log(`starting Switchboard probing ${endpoints} TURN servers every ${intervalSeconds} s (STUN over UDP), and an idle Switchboard`);
  // BENCH_CPU_PROF=1 writes a V8 CPU profile of the probing Switchboard to bench/results/prof/.
  const node = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', 'bench/results/prof'] : [];
  const sb = start('switchboard', process.execPath, [...node, 'bin/switchboard.js', 'serve', '--config-file', join(dir, 'turn.yaml')], { APP_PORT: String(port), HOST: '127.0.0.1' });
  const idle = start('switchboard-idle', process.execPath, ['bin/switchboard.js', 'serve', '--config-file', join(dir, 'idle.yaml')], { APP_PORT: String(idlePort), HOST: '127.0.0.1' });
  const base = `http://127.0.0.1:${port}`;
  await Promise.all([waitHttp(`${base}/healthz`), waitHttp(`http://127.0.0.1:${idlePort}/healthz`)]);

  const deadline = Date.now() + 30_000;
  for (;;) {
    const turn = (await (await fetch(`${base}/coturn`)).json()).turn_data ?? {};
    const healthy = Object.values(turn).filter((s) => s.healthy).length;
    log(`healthy TURN servers: ${healthy}/${endpoints}`);
    if (healthy === endpoints) break;
    if (Date.now() > deadline) throw new Error(`only ${healthy} of ${endpoints} TURN servers became healthy in 30 s: are the responders bound (fd limit)?`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  log('warm-up 3 s');
  await new Promise((r) => setTimeout(r, 3000));

  log(`measuring ${duration} s`);
  const m0 = await metrics(base);
  const c0 = { sb: cpuOf(sb.pid), idle: cpuOf(idle.pid), responders: cpuOf(responders.pid) };
  const t0 = performance.now();
  for (let s = 0; s < duration; s += 10) {
    await new Promise((r) => setTimeout(r, Math.min(10, duration - s) * 1000));
    log(`${Math.min(duration, s + 10)}/${duration} s`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const m1 = await metrics(base);
  const c1 = { sb: cpuOf(sb.pid), idle: cpuOf(idle.pid), responders: cpuOf(responders.pid) };

  const probes = m1.count - m0.count;
  const failed = m1.failed - m0.failed;
  const rounds = probes / endpoints;
  const used = (k) => c1[k][0] + c1[k][1] - c0[k][0] - c0[k][1];
  const result = {
    endpoints,
    intervalSeconds,
    seconds: Number(seconds.toFixed(1)),
    probes,
    failed,
    rounds: Number(rounds.toFixed(1)),
    cpuMsPerRound: Number((used('sb') / 1000 / rounds).toFixed(1)),
    idleCpuMsPerSecond: Number((used('idle') / 1000 / seconds).toFixed(1)),
    cpuMsPerRoundAboveIdle: Number(((used('sb') - used('idle')) / 1000 / rounds).toFixed(1)),
    cpuUsPerProbe: Number((used('sb') / probes).toFixed(1)),
    coreShare: Number((used('sb') / 1e6 / seconds).toFixed(3)),
    respondersCpuUsPerProbe: Number((used('responders') / probes).toFixed(1)),
    p50Ms: Number((quantile(m0, m1, 0.5) * 1000).toFixed(3)),
    p99Ms: Number((quantile(m0, m1, 0.99) * 1000).toFixed(3)),
    p999Ms: Number((quantile(m0, m1, 0.999) * 1000).toFixed(3)),
  };
  console.log('\n| endpoints | interval | rounds | probes (failed) | CPU ms per round | of which above idle | CPU µs per probe | share of one core | p50 ms | p99 ms | p99.9 ms |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  console.log(
    `| ${endpoints} | ${intervalSeconds} s | ${result.rounds} | ${probes} (${failed}) | ${result.cpuMsPerRound} | ${result.cpuMsPerRoundAboveIdle} | ${result.cpuUsPerProbe} | ${(result.coreShare * 100).toFixed(1)} % | ${result.p50Ms} | ${result.p99Ms} | ${result.p999Ms} |`,
  );
  const info = { ...machine(), duration };
  console.log(`\n${JSON.stringify(info)}`);
  if (failed > 0) console.log(`WARNING: ${failed} probes failed on a loopback with every responder up`);
  writeResults('turn-probes', { machine: info, result });
}

main(bench);
