// Micro-benchmark of the selection policies: µs per placement at 100 / 1,000 / 3,000 servers for
// the full ranking (`rank`, the O(n²) reference), the top-k ranking the Redis store sends to its
// reserve script (`rankTop`, k = 4), and a single pick (what the memory store does).
//
//   npm run build && npm run bench:policies
//   BENCH_SIZES=100,1000 BENCH_MS=500 BENCH_DIST=/some/other/dist npm run bench:policies
//
// Pure CPU in one process; no I/O. Each cell runs for BENCH_MS (default 400 ms) after a warm-up.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const dist = path.resolve(process.env.BENCH_DIST ?? new URL('../dist', import.meta.url).pathname);
const { policies, policyNames, rank, rankTop } = await import(pathToFileURL(path.join(dist, 'core/policies/index.js')).href);
const { newServer } = await import(pathToFileURL(path.join(dist, 'core/server.js')).href);

const sizes = (process.env.BENCH_SIZES ?? '100,1000,3000').split(',').map(Number);
const budgetMs = Number(process.env.BENCH_MS ?? 400);
const K = 4;

/** Deterministic random source, so every run sees the same pools and the same choices. */
function seeded(seed) {
  let x = seed;
  return () => (x = (x * 48271) % 2147483647) / 2147483647;
}

function pool(n) {
  const rnd = seeded(12345 + n);
  const regions = ['eu', 'us', 'ap'];
  return Array.from({ length: n }, (_, i) => {
    const capacity = 1000 + Math.floor(rnd() * 9000);
    const s = newServer({ id: `sfu-${i}`, kind: 'sfu', serviceUrl: `http://10.0.${i >> 8}.${i & 255}:3000`, capacity, region: regions[i % 3], initialHealth: 'healthy' }, 0, `e${i}`);
    s.reserved = Math.floor(rnd() * capacity * 0.9);
    // A few servers out of the running, as in a real pool.
    if (i % 17 === 0) s.adminState = 'drain';
    if (i % 23 === 0) s.health = { ...s.health, status: 'unhealthy' };
    return s;
  });
}

/** µs per call of fn, run for budgetMs after a warm-up (at least 3 calls). */
function measure(fn) {
  const warmUntil = performance.now() + Math.min(100, budgetMs / 4);
  while (performance.now() < warmUntil) fn();
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (calls < 3 || now - start < budgetMs) {
    fn();
    calls++;
    now = performance.now();
  }
  return ((now - start) * 1000) / calls;
}

const fmt = (us) => (us === undefined ? '—' : us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us.toFixed(us < 10 ? 2 : 1)} µs`);
const rows = [];
let sink = 0; // keeps results alive so nothing is optimised away
const request = { units: 4 };
console.log(`node ${process.version}, ${dist}, ${budgetMs} ms per cell, request ${JSON.stringify(request)}`);
for (const n of sizes) {
  const servers = pool(n);
  for (const name of policyNames) {
    const policy = policies[name];
    const rnd = seeded(7);
    const single = measure(() => (sink += policy(servers, request, rnd) ? 1 : 0));
    const top = rankTop ? measure(() => (sink += rankTop(name, servers, request, rnd, K).length)) : undefined;
    const full = measure(() => (sink += rank(policy, servers, request, rnd).length));
    rows.push({ servers: n, policy: name, rank: full, rankTop: top, single });
  }
}

console.log('\n| servers | policy | `rank` (full, reference) | `rankTop` k = 4 | single pick | rank / rankTop |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  const ratio = r.rankTop ? `${Math.round(r.rank / r.rankTop).toLocaleString('en-US')}×` : '—';
  console.log(`| ${r.servers.toLocaleString('en-US')} | ${r.policy} | ${fmt(r.rank)} | ${fmt(r.rankTop)} | ${fmt(r.single)} | ${ratio} |`);
}
if (sink === 0) console.log('(no placements)');
