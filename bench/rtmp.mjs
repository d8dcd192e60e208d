// RTMP relay cost: nginx-rtmp played and published DIRECT, then THROUGH Switchboard's RtmpProxy
// (dist/proxy/rtmp/proxy.js, alone in a child process so its CPU is read from /proc by itself).
//   npm run build && npm run bench:rtmp
//   BENCH_PUBLISHERS=4 BENCH_PLAYERS=2 BENCH_DURATION=20 BENCH_TRIES=7 (defaults)
// One clip is encoded once (640x360, 25 fps, -g 25, CBR ~1 Mbit/s with audio); N ffmpeg publishers
// loop it in real time (`-re -stream_loop -1 -c copy`), M ffmpeg players per stream read it
// (`-c copy -f null -`). Per side, after a 3 s warm-up, D seconds measured: the origin's byte
// counters (nginx `rtmp_stat`), the proxy's socket bytes (/proc/<pid>/io rchar/wchar), CPU of every
// process (/proc), and how far each player's output clock advanced (-progress; it must keep up).
// Then, with the proxied load still running, time to first frame: `ffprobe -show_frames
// -read_intervals %+#1` on a running stream, direct and through the proxy alternately, TRIES each,
// from spawn to exit after the first video frame (includes ffprobe's probing and the wait for a
// keyframe, 0–1 s at -g 25).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { children, freePort, log, machine, main, start, writeResults } from './lib.mjs';
import { cpuTotal, fmt, ioOf, machineBusy, median, sleep, startNode } from './relay-lib.mjs';

const PUBLISHERS = Number(process.env.BENCH_PUBLISHERS ?? 4);
const PLAYERS = Number(process.env.BENCH_PLAYERS ?? 2);
const duration = Number(process.env.BENCH_DURATION ?? 20);
const TRIES = Number(process.env.BENCH_TRIES ?? 7);
const WARMUP_S = 3;
const RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

const proxyScript = `
import { RtmpProxy } from ${JSON.stringify(new URL('../dist/proxy/rtmp/proxy.js', import.meta.url).href)};
const origin = { host: '127.0.0.1', port: Number(process.env.ORIGIN_PORT) };
const proxy = new RtmpProxy({ host: '127.0.0.1', port: 0, resolve: async () => origin });
const { port } = await proxy.listen();
process.on('message', () => process.send({ stats: proxy.stats, connections: proxy.connections }));
process.send({ ready: true, port });
`;

/** A tracked child (killed when the bench exits); stdout piped when asked. */
function run(name, cmd, args, pipeStdout = false) {
  const child = spawn(cmd, args, { stdio: ['ignore', pipeStdout ? 'pipe' : 'ignore', 'pipe'] });
  child.name = name;
  child.stderrText = '';
  child.stderr.on('data', (d) => (child.stderrText = (child.stderrText + d.toString()).slice(-4000)));
  child.exited = new Promise((r) => child.once('close', (code, signal) => r({ code, signal })));
  children.push(child);
  return child;
}

async function stopAll(procs) {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

async function complete(name, cmd, args, timeoutMs) {
  const child = run(name, cmd, args, true);
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code } = await child.exited;
  clearTimeout(timer);
  return { code, stdout, stderr: child.stderrText };
}

function startNginx(dir, rtmpPort, httpPort) {
  const conf = `load_module ${RTMP_MODULE};
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:${rtmpPort};
    chunk_size 4096;
    application live { live on; }
  }
}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${httpPort};
    location /stat { rtmp_stat all; }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return start('nginx-rtmp', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
}

/** The origin's totals (bytes in/out since start) and, per stream, publishing and client count. */
async function originStat(httpPort) {
  const xml = await (await fetch(`http://127.0.0.1:${httpPort}/stat`)).text();
  const streams = {};
  for (const m of xml.matchAll(/<stream>\s*<name>([^<]*)<\/name>([\s\S]*?)<\/stream>/g)) {
    streams[m[1]] = { publishing: /<publishing\s*\/>/.test(m[2]), clients: Number(/<nclients>(\d+)<\/nclients>/.exec(m[2])?.[1] ?? 0) };
  }
  return {
    bytesIn: Number(/<bytes_in>(\d+)<\/bytes_in>/.exec(xml)[1]),
    bytesOut: Number(/<bytes_out>(\d+)<\/bytes_out>/.exec(xml)[1]),
    streams,
  };
}

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** ffmpeg playing a stream to the null muxer, its output clock (µs) parsed from -progress. */
function player(name, url) {
  const p = run(name, 'ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostats', '-progress', 'pipe:1', '-rw_timeout', '10000000', '-i', url, '-c', 'copy', '-f', 'null', '-'], true);
  p.outTimeUs = 0;
  let buf = '';
  p.stdout.on('data', (d) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const l of lines) if (l.startsWith('out_time_us=')) p.outTimeUs = Number(l.slice(12)) || p.outTimeUs;
  });
  return p;
}

/** One side: N publishers and N×M players at `port`, D seconds measured. Leaves them running when `keep`. */
async function side(mode, port, ctx, keep) {
  const base = `rtmp://127.0.0.1:${port}/live`;
  log(`${mode}: starting ${PUBLISHERS} publishers at ${base}`);
  const pubs = [];
  for (let i = 0; i < PUBLISHERS; i++) {
    pubs.push(run(`publisher-${i}`, 'ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', ctx.clip, '-c', 'copy', '-f', 'flv', `${base}/s${i}`]));
  }
  await until(async () => Object.values((await originStat(ctx.httpPort)).streams).filter((s) => s.publishing).length === PUBLISHERS, 15_000, `${PUBLISHERS} streams publishing`);
  log(`${mode}: starting ${PLAYERS} players per stream`);
  const players = [];
  for (let i = 0; i < PUBLISHERS; i++) for (let j = 0; j < PLAYERS; j++) players.push(player(`player-${i}-${j}`, `${base}/s${i}`));
  await until(
    async () => {
      const { streams } = await originStat(ctx.httpPort);
      return Array.from({ length: PUBLISHERS }, (_, i) => streams[`s${i}`]?.clients ?? 0).every((c) => c >= 1 + PLAYERS);
    },
    15_000,
    'every player on the origin',
  );
  log(`${mode}: warm-up ${WARMUP_S} s`);
  await sleep(WARMUP_S * 1000);
  const procs = [...pubs, ...players];
  const snap = async () => ({
    wall: performance.now(),
    busy: machineBusy(),
    self: process.cpuUsage(),
    proxy: cpuTotal(ctx.proxy.pid),
    proxyIo: ioOf(ctx.proxy.pid),
    nginx: cpuTotal(ctx.nginx.pid),
    ffmpeg: procs.reduce((a, p) => a + cpuTotal(p.pid), 0),
    origin: await originStat(ctx.httpPort),
    clocks: players.map((p) => p.outTimeUs),
  });
  log(`${mode}: measuring ${duration} s`);
  const a = await snap();
  const statsBefore = (await ctx.proxy.ask('stats')).stats;
  await sleep(duration * 1000);
  const b = await snap();
  const statsAfter = (await ctx.proxy.ask('stats')).stats;
  const dead = procs.filter((p) => p.exitCode !== null || p.signalCode !== null);
  if (dead.length) throw new Error(`${mode}: ${dead.map((p) => `${p.name} exited: ${p.stderrText.trim()}`).join('; ')}`);
  const secs = (b.wall - a.wall) / 1000;
  const wallUs = secs * 1e6;
  const mbit = (bytes) => (bytes * 8) / 1e6;
  const proxyUs = b.proxy - a.proxy;
  const nginxUs = b.nginx - a.nginx;
  const ffmpegUs = b.ffmpeg - a.ffmpeg;
  const selfUs = b.self.user + b.self.system - a.self.user - a.self.system;
  const originIn = mbit(b.origin.bytesIn - a.origin.bytesIn);
  const originOut = mbit(b.origin.bytesOut - a.origin.bytesOut);
  const proxyRead = mbit(b.proxyIo.read - a.proxyIo.read);
  const proxyWritten = mbit(b.proxyIo.written - a.proxyIo.written);
  const advanced = players.map((p, k) => (p.outTimeUs - a.clocks[k]) / 1e6 / secs);
  const res = {
    mode,
    seconds: secs,
    publishers: PUBLISHERS,
    playersPerStream: PLAYERS,
    originInMbps: originIn / secs,
    originOutMbps: originOut / secs,
    proxyReadMbps: proxyRead / secs,
    proxyWrittenMbps: proxyWritten / secs,
    // Relayed = bytes the proxy read from its sockets (each is written once to the other side).
    relayedMbps: mode === 'proxy' ? proxyRead / secs : (originIn + originOut) / secs,
    proxyCores: proxyUs / wallUs,
    proxyCpuUsPerMbit: mode === 'proxy' ? proxyUs / proxyRead : undefined,
    nginxCores: nginxUs / wallUs,
    nginxCpuUsPerMbit: nginxUs / (originIn + originOut),
    ffmpegCores: ffmpegUs / wallUs,
    playerClockRate: { min: Math.min(...advanced), max: Math.max(...advanced) },
    proxyStats: { before: statsBefore, after: statsAfter },
    foreignCores: Math.max(0, b.busy - a.busy - proxyUs - nginxUs - ffmpegUs - selfUs) / wallUs,
  };
  log(
    `${mode}: origin in ${fmt(res.originInMbps, 2)} Mbit/s, out ${fmt(res.originOutMbps, 2)} Mbit/s; proxy read ${fmt(res.proxyReadMbps, 2)} / wrote ${fmt(res.proxyWrittenMbps, 2)} Mbit/s, ` +
      `${fmt(res.proxyCores * 100, 1)} % of a core${res.proxyCpuUsPerMbit ? ` = ${fmt(res.proxyCpuUsPerMbit)} µs/Mbit` : ''}; nginx ${fmt(res.nginxCpuUsPerMbit)} µs/Mbit; ` +
      `ffmpeg ${res.ffmpegCores.toFixed(2)} cores; player clocks ${res.playerClockRate.min.toFixed(2)}–${res.playerClockRate.max.toFixed(2)}× real time; other processes ${res.foreignCores.toFixed(2)} cores`,
  );
  if (!keep) {
    await stopAll(procs);
    await until(async () => Object.keys((await originStat(ctx.httpPort)).streams).length === 0, 10_000, 'the origin to drop the streams');
  }
  return { res, procs };
}

/** Spawn → exit of `ffprobe -show_frames -read_intervals %+#1` on the first video frame, in ms. */
async function firstFrame(url) {
  const t0 = performance.now();
  const r = await complete('ffprobe', 'ffprobe', ['-v', 'error', '-rw_timeout', '10000000', '-select_streams', 'v:0', '-show_frames', '-read_intervals', '%+#1', '-of', 'compact', url], 20_000);
  const ms = performance.now() - t0;
  if (r.code !== 0 || !/media_type=video/.test(r.stdout)) throw new Error(`ffprobe ${url}: exit ${r.code}, no video frame: ${r.stderr.trim()} ${r.stdout.slice(0, 200)}`);
  return ms;
}

async function bench() {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-rtmp-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const clip = join(dir, 'clip.flv');
  log('encoding the clip once (10 s, 640x360, 25 fps, -g 25, ~1 Mbit/s CBR + AAC)');
  const gen = await complete(
    'encoder',
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100', '-t', '10'],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '25', '-keyint_min', '25', '-sc_threshold', '0'],
      ...['-b:v', '900k', '-minrate', '900k', '-maxrate', '900k', '-bufsize', '900k', '-x264-params', 'nal-hrd=cbr'],
      ...['-c:a', 'aac', '-b:a', '96k', clip],
    ],
    120_000,
  );
  if (gen.code !== 0) throw new Error(`clip encoding failed: ${gen.stderr}`);

  const [rtmpPort, httpPort] = [await freePort(), await freePort()];
  const nginx = startNginx(dir, rtmpPort, httpPort);
  await until(() => originStat(httpPort).then(() => true, () => false), 10_000, 'nginx-rtmp');
  const [proxy, { port: proxyPort }] = await startNode('rtmp-proxy', proxyScript, { ORIGIN_PORT: String(rtmpPort) });
  log(`nginx-rtmp (pid ${nginx.pid}) on 127.0.0.1:${rtmpPort}, RtmpProxy (pid ${proxy.pid}) on 127.0.0.1:${proxyPort}`);
  const ctx = { clip, httpPort, nginx, proxy };

  const direct = (await side('direct', rtmpPort, ctx, false)).res;
  const { res: through, procs } = await side('proxy', proxyPort, ctx, true);

  log(`time to first frame, proxied load still running: ${TRIES} tries each, alternating`);
  const ttff = { direct: [], proxy: [] };
  for (let i = 0; i < TRIES; i++) {
    const order = i % 2 === 0 ? ['direct', 'proxy'] : ['proxy', 'direct'];
    for (const m of order) {
      ttff[m].push(await firstFrame(`rtmp://127.0.0.1:${m === 'direct' ? rtmpPort : proxyPort}/live/s0`));
      await sleep(200 + Math.random() * 800); // off the keyframe phase
    }
    log(`try ${i + 1}: direct ${fmt(ttff.direct.at(-1))} ms, proxy ${fmt(ttff.proxy.at(-1))} ms`);
  }
  await stopAll(procs);
  const latency = {
    directMedianMs: median(ttff.direct),
    proxyMedianMs: median(ttff.proxy),
    addedMedianMs: median(ttff.proxy) - median(ttff.direct),
    directMs: ttff.direct.map(Math.round),
    proxyMs: ttff.proxy.map(Math.round),
  };

  console.log(`\n${PUBLISHERS} publishers × ${PLAYERS} players each, ${duration} s measured per side`);
  console.log('| path | origin in Mbit/s | origin out Mbit/s | relayed Mbit/s | proxy CPU (% of a core) | proxy CPU µs/Mbit | nginx CPU µs/Mbit | player clocks (× real time) | other load (cores) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of [direct, through]) {
    console.log(
      `| ${r.mode === 'direct' ? 'direct to nginx-rtmp' : 'through RtmpProxy'} | ${fmt(r.originInMbps, 2)} | ${fmt(r.originOutMbps, 2)} | ${r.mode === 'proxy' ? fmt(r.relayedMbps, 2) : '–'} | ` +
        `${r.mode === 'proxy' ? fmt(r.proxyCores * 100, 1) : '–'} | ${r.mode === 'proxy' ? fmt(r.proxyCpuUsPerMbit) : '–'} | ${fmt(r.nginxCpuUsPerMbit)} | ` +
        `${r.playerClockRate.min.toFixed(2)}–${r.playerClockRate.max.toFixed(2)} | ${r.foreignCores.toFixed(2)} |`,
    );
  }
  console.log(`\nTime to first frame (ffprobe spawn → first video frame), ${TRIES} tries each:`);
  console.log('| path | median ms | tries ms |');
  console.log('| --- | ---: | --- |');
  console.log(`| direct | ${fmt(latency.directMedianMs)} | ${latency.directMs.join(', ')} |`);
  console.log(`| through RtmpProxy | ${fmt(latency.proxyMedianMs)} | ${latency.proxyMs.join(', ')} |`);
  console.log(`added by the proxy (difference of medians): ${fmt(latency.addedMedianMs)} ms`);

  const info = { ...machine(), publishers: PUBLISHERS, playersPerStream: PLAYERS, duration, tries: TRIES };
  console.log(JSON.stringify(info));
  writeResults('rtmp', { machine: info, direct, proxy: through, latency });
  proxy.kill('SIGKILL');
  nginx.kill('SIGKILL');
}

main(bench);
