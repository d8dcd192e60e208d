// WebRTC UDP relay (RtcUdpProxy, routed by ICE ufrag) against sending straight to the origin, in one
// run on the same machine: packets/s round trip with a fixed window in flight, RTT, and CPU of the
// relay process per packet.
//   npm run build && npm run bench:udp
//   BENCH_DURATION=10 BENCH_ROUNDS=2 BENCH_WINDOW=64 BENCH_SIZE=1200 (defaults; rounds alternate
//   direct → relay, relay → direct, so each side gets ROUNDS × DURATION seconds)
// Processes: a UDP echo "origin" (node:dgram, its own process), the relay (dist/proxy/streaming/udp.js
// in its own process, resolve(ufrag) → the echo origin), and the client in this process. Through the
// relay the client first sends a STUN Binding request with USERNAME `<ufrag>:<peer>` (as a browser's
// first ICE check), waits for it to come back, then sends data packets.
import { createSocket } from 'node:dgram';
import { encodeBindingRequest } from '../dist/probes/stun.js';
import { bindingUfrag } from '../dist/proxy/streaming/udp.js';
import { log, machine, main, writeResults } from './lib.mjs';
import { cpuTotal, fmt, machineBusy, percentile, sleep, startNode } from './relay-lib.mjs';

const duration = Number(process.env.BENCH_DURATION ?? 10);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 64);
const SIZE = Number(process.env.BENCH_SIZE ?? 1200);
const UFRAG = 'benchufrag';
const LOST_AFTER_MS = 500;

// The origin: echoes every datagram to its sender.
const originScript = `
import { createSocket } from 'node:dgram';
const s = createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(0, '127.0.0.1', () => process.send({ ready: true, port: s.address().port }));
`;

// The relay: RtcUdpProxy from dist/, alone in its process; answers { stats } on any message.
const relayScript = `
import { RtcUdpProxy } from ${JSON.stringify(new URL('../dist/proxy/streaming/udp.js', import.meta.url).href)};
const origin = { host: '127.0.0.1', port: Number(process.env.ORIGIN_PORT) };
const proxy = new RtcUdpProxy({ host: '127.0.0.1', port: 0, resolve: async (ufrag) => (ufrag === ${JSON.stringify(UFRAG)} ? origin : undefined) });
const { port } = await proxy.listen();
process.on('message', () => process.send({ stats: proxy.stats, sessions: proxy.sessionCount }));
process.send({ ready: true, port });
`;

/** A Binding request from src/probes/stun.ts's encoder, with USERNAME `<ufrag>:<peer>` added. */
function bindingRequest(ufrag) {
  const tid = Buffer.alloc(12, 7);
  const header = encodeBindingRequest(tid); // 20 bytes, no attributes
  const v = Buffer.from(`${ufrag}:benchpeer`);
  const attr = Buffer.alloc(4 + Math.ceil(v.length / 4) * 4);
  attr.writeUInt16BE(0x0006, 0); // USERNAME
  attr.writeUInt16BE(v.length, 2);
  v.copy(attr, 4);
  const msg = Buffer.concat([header, attr]);
  msg.writeUInt16BE(msg.length - 20, 2);
  if (bindingUfrag(msg) !== ufrag) throw new Error('the binding request does not carry the ufrag');
  return msg;
}

/**
 * Ping-pong through `port`: keeps WINDOW packets of SIZE bytes in flight (an RTP-looking first byte,
 * a sequence number and the send time), sends one more for every one that comes back; a packet not
 * back after LOST_AFTER_MS counts as lost and is replaced. Warm-up 1 s, then `seconds` measured.
 */
async function pingPong(port, viaRelay, seconds, onMeasureStart) {
  const sock = createSocket('udp4');
  sock.on('error', (err) => log(`client socket error: ${err.message}`));
  await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  try {
    if (viaRelay) {
      const stun = bindingRequest(UFRAG);
      const back = new Promise((resolve) => sock.once('message', resolve));
      let answered = false;
      void back.then(() => (answered = true));
      for (let i = 0; i < 20 && !answered; i++) {
        sock.send(stun, port, '127.0.0.1');
        await Promise.race([back, sleep(100)]);
      }
      if (!answered) throw new Error('the binding request never came back through the relay');
    }
    const inflight = new Map(); // seq → send time (ms)
    let seq = 0;
    let measuring = false;
    let stopped = false;
    const m = { received: 0, lost: 0, rtts: [] };
    const send = () => {
      const b = Buffer.allocUnsafe(SIZE);
      b.fill(0xab, 12);
      b[0] = 0x80; // RTP version 2: not STUN, as SRTP after ICE
      b[1] = 96;
      b.writeUInt16BE(seq & 0xffff, 2);
      b.writeUInt32BE(seq >>> 0, 4);
      b.writeUInt32BE(0, 8);
      inflight.set(seq, performance.now());
      seq++;
      sock.send(b, port, '127.0.0.1');
    };
    sock.on('message', (b) => {
      if (b.length !== SIZE) return;
      const s = b.readUInt32BE(4);
      const t = inflight.get(s);
      if (t === undefined) return; // counted lost already
      inflight.delete(s);
      if (measuring) {
        m.received++;
        if (m.received % 16 === 0) m.rtts.push(performance.now() - t);
      }
      if (!stopped) send();
    });
    const sweeper = setInterval(() => {
      const cutoff = performance.now() - LOST_AFTER_MS;
      for (const [s, t] of inflight) {
        if (t >= cutoff) break; // insertion order = send order
        inflight.delete(s);
        if (measuring) m.lost++;
        if (!stopped) send();
      }
    }, 50);
    for (let i = 0; i < WINDOW; i++) send();
    await sleep(1000);
    const before = onMeasureStart();
    measuring = true;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    measuring = false;
    const elapsed = (performance.now() - t0) / 1000;
    stopped = true;
    clearInterval(sweeper);
    await sleep(100);
    m.rtts.sort((a, b) => a - b);
    return { before, elapsed, received: m.received, lost: m.lost, rtts: m.rtts };
  } finally {
    await new Promise((r) => sock.close(r));
  }
}

async function bench() {
  log(`${rounds} round(s) of ${duration} s per side, window ${WINDOW}, ${SIZE}-byte packets`);
  const [origin, { port: originPort }] = await startNode('echo-origin', originScript);
  const [relay, { port: relayPort }] = await startNode('relay', relayScript, { ORIGIN_PORT: String(originPort) });
  log(`echo origin on 127.0.0.1:${originPort}, relay (pid ${relay.pid}) on 127.0.0.1:${relayPort}`);

  const results = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['direct', 'relay'] : ['relay', 'direct'];
    for (const mode of order) {
      const viaRelay = mode === 'relay';
      log(`round ${round + 1} ${mode}: warm-up 1 s, measuring ${duration} s`);
      let statsBefore;
      const r = await pingPong(viaRelay ? relayPort : originPort, viaRelay, duration, () => {
        const snap = { relay: cpuTotal(relay.pid), origin: cpuTotal(origin.pid), self: process.cpuUsage(), busy: machineBusy(), wall: performance.now() };
        void relay.ask('stats').then((s) => (statsBefore = s.stats));
        return snap;
      });
      const after = { relay: cpuTotal(relay.pid), origin: cpuTotal(origin.pid), self: process.cpuUsage(r.before.self), busy: machineBusy(), wall: performance.now() };
      const statsAfter = (await relay.ask('stats')).stats;
      const selfUs = after.self.user + after.self.system;
      const relayUs = after.relay - r.before.relay;
      const originUs = after.origin - r.before.origin;
      const wallUs = (after.wall - r.before.wall) * 1e3;
      const foreignCores = Math.max(0, after.busy - r.before.busy - relayUs - originUs - selfUs) / wallUs;
      const relayed = viaRelay ? statsAfter.toOrigin - statsBefore.toOrigin + statsAfter.toClient - statsBefore.toClient : 0;
      const res = {
        round,
        mode,
        roundTripsPerSec: r.received / r.elapsed,
        mbitPerSecEachWay: (r.received * SIZE * 8) / r.elapsed / 1e6,
        lost: r.lost,
        rttP50Ms: percentile(r.rtts, 50),
        rttP99Ms: percentile(r.rtts, 99),
        relayedPackets: relayed,
        relayCpuUsPerRoundTrip: viaRelay ? relayUs / r.received : undefined,
        relayCpuUsPerPacket: viaRelay ? relayUs / relayed : undefined,
        relayCores: relayUs / wallUs,
        originCpuUsPerRoundTrip: originUs / r.received,
        clientCpuUsPerRoundTrip: selfUs / r.received,
        foreignCores,
      };
      results.push(res);
      log(
        `round ${round + 1} ${mode}: ${fmt(res.roundTripsPerSec)} round trips/s (${fmt(res.mbitPerSecEachWay, 1)} Mbit/s each way), ${res.lost} lost, ` +
          `RTT p50 ${fmt(res.rttP50Ms, 2)} ms p99 ${fmt(res.rttP99Ms, 2)} ms; CPU µs per round trip: client ${fmt(res.clientCpuUsPerRoundTrip, 1)}, ` +
          `origin ${fmt(res.originCpuUsPerRoundTrip, 1)}${viaRelay ? `, relay ${fmt(res.relayCpuUsPerRoundTrip, 1)} (${fmt(res.relayCpuUsPerPacket, 1)} per relayed packet, ${relayed} packets)` : ''}; ` +
          `other processes used ${foreignCores.toFixed(2)} cores`,
      );
    }
  }
  const finalStats = (await relay.ask('stats')).stats;

  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const side = (mode) => {
    const rs = results.filter((x) => x.mode === mode);
    return {
      mode,
      roundTripsPerSec: mean(rs.map((x) => x.roundTripsPerSec)),
      perRound: rs.map((x) => Math.round(x.roundTripsPerSec)),
      mbitPerSecEachWay: mean(rs.map((x) => x.mbitPerSecEachWay)),
      rttP50Ms: mean(rs.map((x) => x.rttP50Ms)),
      rttP99Ms: mean(rs.map((x) => x.rttP99Ms)),
      lost: rs.reduce((a, x) => a + x.lost, 0),
      relayCpuUsPerPacket: mode === 'relay' ? mean(rs.map((x) => x.relayCpuUsPerPacket)) : undefined,
      relayCpuUsPerRoundTrip: mode === 'relay' ? mean(rs.map((x) => x.relayCpuUsPerRoundTrip)) : undefined,
      relayCores: mode === 'relay' ? mean(rs.map((x) => x.relayCores)) : undefined,
      originCpuUsPerRoundTrip: mean(rs.map((x) => x.originCpuUsPerRoundTrip)),
      clientCpuUsPerRoundTrip: mean(rs.map((x) => x.clientCpuUsPerRoundTrip)),
      foreignCores: mean(rs.map((x) => x.foreignCores)),
    };
  };
  const direct = side('direct');
  const through = side('relay');
  const ratio = through.roundTripsPerSec / direct.roundTripsPerSec;

  console.log(`\nMeans over ${rounds} round(s) of ${duration} s; window ${WINDOW} packets of ${SIZE} bytes`);
  console.log('| path | round trips/s (per round) | Mbit/s each way | RTT p50 ms | RTT p99 ms | lost | relay CPU µs/packet | relay CPU µs/round trip | relay cores | origin µs/rt | client µs/rt | other load (cores) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of [direct, through]) {
    console.log(
      `| ${s.mode === 'direct' ? 'direct to the echo origin' : 'through RtcUdpProxy'} | ${fmt(s.roundTripsPerSec)} (${s.perRound.map((x) => fmt(x)).join(', ')}) | ${fmt(s.mbitPerSecEachWay, 1)} | ${fmt(s.rttP50Ms, 2)} | ${fmt(s.rttP99Ms, 2)} | ${s.lost} | ` +
        `${fmt(s.relayCpuUsPerPacket, 1)} | ${fmt(s.relayCpuUsPerRoundTrip, 1)} | ${s.relayCores === undefined ? '–' : s.relayCores.toFixed(2)} | ${fmt(s.originCpuUsPerRoundTrip, 1)} | ${fmt(s.clientCpuUsPerRoundTrip, 1)} | ${s.foreignCores.toFixed(2)} |`,
    );
  }
  console.log(`\nthrough / direct: ${ratio.toFixed(2)}× round trips/s; relay sessions ${finalStats.sessions}, dropped ${finalStats.droppedUnknown + finalStats.droppedUnresolved + finalStats.droppedFull}`);
  const info = { ...machine(), duration, rounds, window: WINDOW, size: SIZE };
  console.log(JSON.stringify(info));
  writeResults('udp-relay', { machine: info, summary: { direct, relay: through, ratio }, relayStats: finalStats, results });
}

main(bench);
