import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OriginService, ORIGINS_POOL } from '../../src/pools/origins/service.js';
import { listenAddress, listenEntries, parseSrsRegister } from '../../src/pools/origins/srs.js';
import { streamKey } from '../../src/pools/origins/stream-key.js';
import { StreamService } from '../../src/pools/origins/streams.js';
import { RtmpProxy } from '../../src/proxy/rtmp/proxy.js';
import { StreamHttpProxy, storeSegmentIndex } from '../../src/proxy/streaming/http.js';
import { NetworkPolicy } from '../../src/security/network-policy.js';
import { MemoryStore } from '../../src/store/memory.js';
import { stopChild } from '../helpers/children.js';
import { complete, run } from '../helpers/media-tools.js';
import { NginxRtmp, RTMP_MODULE } from '../helpers/nginx-rtmp.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { until } from '../helpers/until.js';

/**
 * Issue 16 item 5 (HTTP): the streaming HTTP proxy between real players (ffprobe, fetch) and real
 * origins: two nginx-rtmp origins writing HLS, and node-media-server serving HTTP-FLV. ffmpeg
 * publishes through the RTMP proxy, whose resolver is StreamService.locate: the real path.
 */
const NMS_APP = join(process.cwd(), 'node_modules/node-media-server/bin/app.js');
const haveTools = existsSync(RTMP_MODULE) && ['/usr/bin/ffmpeg', '/usr/bin/ffprobe', '/usr/sbin/nginx'].every((p) => existsSync(p)) && existsSync(NMS_APP);




const logs: string[] = [];
const log = (level: string) => (obj: object, msg?: string) => logs.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);

/** One Switchboard instance: a store with registered origins, its services, the RTMP and HTTP proxies. */
interface Stack {
  store: MemoryStore;
  streams: StreamService;
  rtmp: RtmpProxy;
  http: StreamHttpProxy;
  origins: Map<string, string>; // origin server id → label
  url(path: string): string;
  close(): Promise<void>;
}

async function stack(
  origins: { label: string; rtmp: number; http: number; ip?: string }[],
  extra: { maxConnections?: number; timeoutMs?: number; networkPolicy?: NetworkPolicy } = {},
): Promise<Stack> {
  const store = new MemoryStore();
  const service = new OriginService({ store, config: { aliveSeconds: 300 }, instanceId: 'i0' });
  const ids = new Map<string, string>();
  for (const o of origins) {
    const reg = parseSrsRegister({ ip: o.ip ?? '127.0.0.1', server: o.label, service: 'svc1', pid: String(o.rtmp), rtmp: [String(o.rtmp)], http: [`tcp://:${o.http}`] });
    ids.set((await service.register(reg)).server.id, o.label);
  }
  const streams = new StreamService({ store, instanceId: 'i0' });
  const rtmp = new RtmpProxy({
    logger: { info: log('rtmp info'), warn: log('rtmp warn'), debug: log('rtmp debug') },
    host: '127.0.0.1',
    port: 0,
    resolve: async (key, mode) => {
      const origin = await streams.locate(key, mode);
      const addr = listenAddress(origin.endpoints.host!, listenEntries(origin.endpoints, 'rtmp')[0]!);
      if (!addr) throw new Error(`origin ${origin.id} has no RTMP endpoint`);
      return addr;
    },
  });
  await rtmp.listen();
  const logger = { info: log('info'), warn: log('warn'), debug: log('debug') };
  const http = new StreamHttpProxy({ streams, logger, host: '127.0.0.1', port: 0, timeoutMs: extra.timeoutMs ?? 3000, maxConnections: extra.maxConnections,
    networkPolicy: extra.networkPolicy,
    segments: storeSegmentIndex(store),
  });
  const { port } = await http.listen();
  return {
    store,
    streams,
    rtmp,
    http,
    origins: ids,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    close: async () => {
      await Promise.all([rtmp.close(), http.close()]);
      await store.close();
    },
  };
}

/** ffmpeg publishing the clip in a loop, in real time, without re-encoding. */
function publish(url: string): ChildProcess {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'flv', url]);
}

function probe(url: string, timeoutMs = 20_000) {
  return complete('ffprobe', ['-v', 'error', '-rw_timeout', '8000000', '-show_streams', '-of', 'json', url], timeoutMs);
}

function codecs(stdout: string): string[] {
  return (JSON.parse(stdout) as { streams: { codec_type: string; codec_name: string }[] }).streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();
}

async function json(res: Response): Promise<{ error: string; message: string }> {
  expect(res.headers.get('content-type')).toBe('application/json');
  return (await res.json()) as { error: string; message: string };
}

/** node-media-server (HTTP-FLV origin) as a child process. */
async function startNms(dir: string): Promise<{ child: ChildProcess; rtmp: number; http: number }> {
  const [rtmp, http] = [await freePort(), await freePort()];
  const config = join(dir, 'nms.json');
  const cfg = {
    bind: '127.0.0.1',
    notify: { url: '' },
    store: { path: join(dir, 'nms-data'), maxHistory: 100 },
    auth: { play: false, publish: false, secret: 'test-secret', jwt: { secret: 'test-jwt', expiresIn: '1h', refreshExpiresIn: '1h', algorithm: 'HS256', users: [] } },
    rtmp: { port: rtmp },
    http: { port: http },
    webadmin: { enable: false },
    record: { auto: false, path: join(dir, 'nms-record') },
  };
  writeFileSync(config, JSON.stringify(cfg));
  const child = run(process.execPath, [NMS_APP, '-c', config, '--no-admin']);
  await Promise.all([waitForPort(rtmp), waitForPort(http)]);
  return { child, rtmp, http };
}

let dir: string;
let clip: string;
let a: NginxRtmp;
let b: NginxRtmp;
let nms: { child: ChildProcess; rtmp: number; http: number };
let hls: Stack;
let flv: Stack;
const publishers: ChildProcess[] = [];

beforeAll(async () => {
  if (!haveTools) return;
  dir = mkdtempSync(join(tmpdir(), 'sb-stream-http-'));
  clip = join(dir, 'clip.flv');
  const gen = await complete(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine', '-t', '4', '-c:v', 'libx264', '-g', '25', '-preset', 'ultrafast', '-c:a', 'aac', clip],
    30_000,
  );
  if (gen.code !== 0) throw new Error(`clip generation failed: ${gen.stderr}`);
  [a, b, nms] = await Promise.all([NginxRtmp.start('127.0.0.1', 4096, { hls: true }), NginxRtmp.start('127.0.0.1', 4096, { hls: true }), startNms(dir)]);
  hls = await stack([
    { label: 'a', rtmp: a.rtmpPort, http: a.httpPort },
    { label: 'b', rtmp: b.rtmpPort, http: b.httpPort },
  ]);
  flv = await stack([{ label: 'nms', rtmp: nms.rtmp, http: nms.http }]);
}, 60_000);

afterAll(async () => {
  if (process.env.STREAM_TEST_LOGS) console.log(logs.join('\n'));
  await Promise.all(publishers.splice(0).map((p) => stopChild(p, 'SIGKILL')));
  await Promise.all([hls?.close(), flv?.close()]);
  await Promise.all([a?.stop(), b?.stop(), nms ? stopChild(nms.child, 'SIGTERM', 3000) : undefined]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A stream name `locate(publish)` maps to an origin other than `notOn` (names mapped elsewhere are forgotten). */
async function nameOnOtherOrigin(s: Stack, notOn: string): Promise<string> {
  for (let i = 0; i < 64; i++) {
    const name = `cam${i + 2}`;
    const key = streamKey('127.0.0.1', 'live', name);
    if ((await s.streams.locate(key, 'publish')).id !== notOn) return name;
    await s.streams.forget(key);
  }
  throw new Error('no stream name landed on the other origin');
}

describe.skipIf(!haveTools)('streaming HTTP proxy with real origins', () => {
  it('serves HLS of two streams on two origins: rewritten playlists, segments by spbhid and by path, ffprobe', async () => {
    const pub1 = publish(`rtmp://127.0.0.1:${hls.rtmp.port}/live/cam1`);
    publishers.push(pub1);
    const key1 = streamKey('127.0.0.1', 'live', 'cam1');
    const origin1 = await until(async () => hls.streams.mappedOrigin(key1), 10_000, 'cam1 mapped');
    const name2 = await nameOnOtherOrigin(hls, origin1);
    const pub2 = publish(`rtmp://127.0.0.1:${hls.rtmp.port}/live/${name2}`);
    publishers.push(pub2);
    const origin2 = hls.streams.mappedOrigin(streamKey('127.0.0.1', 'live', name2))!;
    expect(origin2).not.toBe(origin1);
    const nginxOf = (id: string) => (hls.origins.get(id) === 'a' ? a : b);
    // Each stream is published on its own origin only.
    await until(async () => (await nginxOf(origin1).publishing()).includes('cam1') && (await nginxOf(origin2).publishing()).includes(name2), 10_000, 'both publishing');
    expect(await nginxOf(origin1).publishing()).not.toContain(name2);
    expect(await nginxOf(origin2).publishing()).not.toContain('cam1');

    for (const name of ['cam1', name2]) {
      // A playlist with at least two segments (nginx writes one per second).
      const text = await until(
        async () => {
          const res = await fetch(hls.url(`/live/${name}.m3u8`));
          if (res.status !== 200) return undefined;
          const t = await res.text();
          return t.split('\n').filter((l) => l.endsWith('.ts') || l.includes('.ts?')).length >= 2 ? t : undefined;
        },
        20_000,
        `${name} playlist with segments`,
      );
      expect(text.startsWith('#EXTM3U')).toBe(true);
      const uris = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(uris.length).toBeGreaterThanOrEqual(2);
      const spbhid = new URL(uris[0]!, 'http://x').searchParams.get('spbhid')!;
      expect(spbhid).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
      for (const u of uris) expect(u).toMatch(new RegExp(`^/live/${name}-\\d+\\.ts\\?spbhid=${spbhid}$`));
      expect(await hls.streams.streamBySpbhid(spbhid)).toBe(streamKey('127.0.0.1', 'live', name));

      // A segment through the rewritten URL: MPEG-TS.
      const seg = await fetch(hls.url(uris[uris.length - 1]!));
      expect(seg.status).toBe(200);
      expect(seg.headers.get('content-type')).toBe('video/mp2t');
      const bytes = Buffer.from(await seg.arrayBuffer());
      expect(bytes.length).toBeGreaterThan(188);
      expect(bytes.length % 188).toBe(0);
      for (let i = 0; i < bytes.length; i += 188) expect(bytes[i]).toBe(0x47);
      // By its path alone (a player that dropped the query).
      const bare = await fetch(hls.url(uris[uris.length - 1]!.split('?')[0]!));
      expect(bare.status).toBe(200);
      expect(Buffer.from(await bare.arrayBuffer()).equals(bytes)).toBe(true);

      // The client's own spbhid is kept.
      const again = await (await fetch(hls.url(`/live/${name}.m3u8?spbhid=mine_${name}`))).text();
      expect(again).toMatch(new RegExp(`\\.ts\\?spbhid=mine_${name}\\n`));
    }

    // A real HLS client through Switchboard.
    const res = await probe(hls.url('/live/cam1.m3u8'));
    expect(res.code, res.stderr).toBe(0);
    expect(codecs(res.stdout)).toContain('video:h264');
    await Promise.all([stopChild(pub1, 'SIGKILL'), stopChild(pub2, 'SIGKILL')]);
  }, 90_000);

  it('answers unknown segments 404, bad input 400 naming the field, other methods 405', async () => {
    let res = await fetch(hls.url('/live/cam1-1.ts?spbhid=nosuchsession'));
    expect(res.status).toBe(404);
    expect((await json(res)).error).toBe('unknown_session');
    res = await fetch(hls.url('/live/nothing-7.m4s'));
    expect(res.status).toBe(404);
    expect((await json(res)).error).toBe('not_found');
    for (const [path, field] of [
      ['/nostream.flv', 'path'],
      ['/live/a.txt', 'path'],
      ['/live/a.m3u8?spbhid=bad%20id', 'spbhid'],
      ['/live/%00.flv', 'stream'],
    ] as const) {
      res = await fetch(hls.url(path));
      expect(res.status, path).toBe(400);
      expect((await json(res)).message, path).toMatch(new RegExp(`^${field} `));
    }
    res = await fetch(hls.url('/live/a.flv'), { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
  });

  it('serves HTTP-FLV from node-media-server: ffprobe through Switchboard, client abort reaches the origin', async () => {
    const pub = publish(`rtmp://127.0.0.1:${flv.rtmp.port}/live/show`);
    publishers.push(pub);
    // First bytes of the live FLV once the publisher is on.
    const headers = await until(
      async () => {
        const ac = new AbortController();
        const res = await fetch(flv.url('/live/show.flv'), { signal: ac.signal });
        if (res.status !== 200) {
          ac.abort();
          return undefined;
        }
        const reader = res.body!.getReader();
        const first = await reader.read();
        ac.abort();
        if (!first.value || Buffer.from(first.value).subarray(0, 3).toString() !== 'FLV') return undefined;
        return res.headers;
      },
      15_000,
      'FLV bytes through Switchboard',
    );
    // Headers as the origin sends them (node-media-server sends no content-type, but CORS).
    const direct = await until(
      async () => {
        const ac = new AbortController();
        const res = await fetch(`http://127.0.0.1:${nms.http}/live/show.flv`, { signal: ac.signal });
        ac.abort();
        return res.headers;
      },
      5000,
      'FLV headers from the origin',
    );
    for (const h of ['content-type', 'access-control-allow-origin']) expect(headers.get(h), h).toBe(direct.get(h));
    expect(headers.get('access-control-allow-origin')).toBe('*');
    const res = await probe(flv.url('/live/show.flv'));
    expect(res.code, res.stderr).toBe(0);
    expect(codecs(res.stdout)).toEqual(expect.arrayContaining(['audio:aac', 'video:h264']));

    // A client that goes away: the proxy's request to the origin is gone too.
    await until(async () => flv.http.stats.active === 0, 5000, 'no active requests');
    const ac = new AbortController();
    const live = await fetch(flv.url('/live/show.flv'), { signal: ac.signal });
    await live.body!.getReader().read();
    expect(flv.http.stats.active).toBe(1);
    const sockets = await originSockets(nms.http);
    expect(sockets).toBeGreaterThanOrEqual(1);
    ac.abort();
    await until(async () => flv.http.stats.active === 0 && (await originSockets(nms.http)) === sockets - 1, 5000, 'origin request closed');

    await stopChild(pub, 'SIGKILL');
  }, 60_000);

  it("passes an origin's end and failure mid-stream on to the player", async () => {
    // node-media-server keeps players open when the publisher leaves (it waits for a re-publish):
    // a stand-in origin that ends or breaks its response instead.
    const origin = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'video/x-flv' });
      res.write(Buffer.from('FLV\x01\x05\0\0\0\x09\0\0\0\0', 'latin1'));
      setTimeout(() => (req.url!.startsWith('/live/ends') ? res.end() : res.destroy()), 300);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const port = (origin.address() as AddressInfo).port;
    const s = await stack([{ label: 'standin', rtmp: await freePort(), http: port }]);
    try {
      const ends = await fetch(s.url('/live/ends.flv'));
      expect(ends.status).toBe(200);
      expect(ends.headers.get('content-type')).toBe('video/x-flv');
      expect(Buffer.from(await ends.arrayBuffer()).subarray(0, 3).toString()).toBe('FLV');
      const breaks = await fetch(s.url('/live/breaks.flv'));
      expect(breaks.status).toBe(200);
      await expect(breaks.arrayBuffer()).rejects.toThrow();
      await until(async () => s.http.stats.active === 0, 2000, 'no active requests');
    } finally {
      await s.close();
      origin.closeAllConnections();
      await new Promise((r) => origin.close(r));
    }
  });

  it('refuses at once: a play of a stream whose origin is unhealthy (503), an unreachable origin (502), too many connections (503)', async () => {
    // cam1's origin goes unhealthy: players get 503 origin_unavailable, without waiting.
    const key1 = streamKey('127.0.0.1', 'live', 'cam1');
    const originId = hls.streams.mappedOrigin(key1)!;
    const s = hls.store.getServer(ORIGINS_POOL, originId)!;
    const t = Date.now();
    await hls.store.recordHealth(ORIGINS_POOL, originId, s.epoch, { status: 'unhealthy', successes: 0, failures: 1, since: t, lastCheck: t, lastError: 'test' });
    for (const path of ['/live/cam1.flv', '/live/cam1.m3u8', '/live/cam1-1.ts?spbhid=mine_cam1']) {
      const started = Date.now();
      const res = await fetch(hls.url(path));
      expect(res.status, path).toBe(503);
      expect((await json(res)).error).toBe('origin_unavailable');
      expect(Date.now() - started).toBeLessThan(1000);
    }

    // An origin whose HTTP port nothing listens on: 502 at once.
    const dead = await stack([{ label: 'dead', rtmp: await freePort(), http: await freePort() }], { maxConnections: 1 });
    try {
      const started = Date.now();
      const res = await fetch(dead.url('/live/x.flv'));
      expect(res.status).toBe(502);
      expect((await json(res)).error).toBe('origin_unreachable');
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await dead.close();
    }

    // Origins outside the allowed networks: refused at connect time, by IP literal or by name.
    const policy = new NetworkPolicy({ allowedNetworks: ['10.0.0.0/8'] });
    for (const ip of ['127.0.0.1', 'localhost']) {
      const guarded = await stack([{ label: 'guarded', rtmp: nms.rtmp, http: nms.http, ip }], { networkPolicy: policy });
      try {
        const res = await fetch(guarded.url('/live/show.flv'));
        expect(res.status, ip).toBe(502);
        expect((await json(res)).error, ip).toBe('forbidden_destination');
      } finally {
        await guarded.close();
      }
    }

    // The connection limit: one FLV player holds the only slot, the next one is refused.
    const pub = publish(`rtmp://127.0.0.1:${flv.rtmp.port}/live/limit`);
    publishers.push(pub);
    const one = new StreamHttpProxy({ streams: flv.streams, host: '127.0.0.1', port: 0, maxConnections: 1 });
    const { port } = await one.listen();
    const ac = new AbortController();
    try {
      await until(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/live/limit.flv`, { signal: ac.signal });
          if (res.status === 200) return true;
          await res.arrayBuffer();
          return undefined;
        },
        15_000,
        'limit stream playing',
      );
      const res = await fetch(`http://127.0.0.1:${port}/live/limit.flv`);
      expect(res.status).toBe(503);
      expect((await json(res)).error).toBe('too_many_connections');
    } finally {
      ac.abort();
      await one.close();
      await stopChild(pub, 'SIGKILL');
    }
  }, 40_000);
});

/** Established TCP connections to a local port (server side), from /proc/net/tcp. */
async function originSockets(port: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[1]!.endsWith(`:${hex}`) && cols[3] === '01') n++;
    }
  }
  return n;
}
