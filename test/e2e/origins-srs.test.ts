import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopChild } from '../helpers/children.js';
import { complete, run } from '../helpers/media-tools.js';
import { NginxRtmp, RTMP_MODULE } from '../helpers/nginx-rtmp.js';
import { freePort } from '../helpers/ports.js';
import { startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

/**
 * Seed 003 end to end (run `npm run build` first: the instances run dist/), as SRS's proxy is
 * used: two real nginx-rtmp origins (writing HLS) registered with SRS's heartbeat body on the
 * system API port (PROXY_SYSTEM_API), two Switchboard processes configured with SRS's names
 * (PROXY_RTMP_SERVER, PROXY_HTTP_SERVER, PROXY_LOAD_BALANCER_TYPE=redis, PROXY_REDIS_HOST/PORT)
 * sharing one redis-server, ffmpeg publishing and ffprobe/fetch playing through Switchboard. The
 * origins' own /stat is the ground truth of where a stream is. This test sends the heartbeats
 * (every 500 ms; origins.aliveSeconds is 2 s from a --config-file), so it can silence an origin.
 */
const haveTools = existsSync(RTMP_MODULE) && ['/usr/bin/ffmpeg', '/usr/bin/ffprobe', '/usr/sbin/nginx'].every((p) => existsSync(p));

interface Instance {
  sb: SwitchboardProcess;
  systemApi: number;
  rtmp: number;
  http: number;
}

interface Origin {
  label: string;
  nginx: NginxRtmp;
  /** SRS's register body for it. */
  body: Record<string, unknown>;
  /** Switchboard's id for it: server-service-pid. */
  id: string;
  /** Whether the test keeps heartbeating it. */
  beating: boolean;
}

let dir: string;
let clip: string;
let redis: RedisServer;
let one: Instance;
let two: Instance;
let origins: Origin[] = [];
let heartbeat: NodeJS.Timeout | undefined;
const publishers = new Set<ChildProcess>();




const rtmpUrl = (inst: Instance, name: string) => `rtmp://127.0.0.1:${inst.rtmp}/live/${name}`;

/** ffmpeg publishing the clip through Switchboard in a loop, in real time, without re-encoding. */
function publish(inst: Instance, name: string): ChildProcess {
  const child = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'flv', rtmpUrl(inst, name)]);
  publishers.add(child);
  child.once('close', () => publishers.delete(child));
  return child;
}

async function unpublish(...children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => stopChild(c, 'SIGKILL')));
}

/** ffprobe over RTMP through an instance; the codec types it found. */
async function probe(inst: Instance, name: string, timeoutMs = 20_000) {
  const res = await complete('ffprobe', ['-v', 'error', '-rw_timeout', '8000000', '-show_streams', '-of', 'json', rtmpUrl(inst, name)], timeoutMs);
  const types = res.code === 0 ? (JSON.parse(res.stdout) as { streams: { codec_type: string; codec_name: string }[] }).streams.map((s) => `${s.codec_type}:${s.codec_name}`) : [];
  return { ...res, types };
}

/** The origins whose /stat shows `name` with an active publisher (a stopped origin shows nothing). */
async function holders(name: string): Promise<Origin[]> {
  const out: Origin[] = [];
  for (const o of origins) {
    const publishing = await o.nginx.publishing().catch(() => [] as string[]);
    if (publishing.includes(name)) out.push(o);
  }
  return out;
}

/** Waits until `name` is published on exactly one origin, and returns it. */
async function placedOn(name: string): Promise<Origin> {
  const [o] = await until(async () => {
    const h = await holders(name);
    return h.length > 0 ? h : undefined;
  }, 15_000, `${name} publishing on an origin`);
  // Give a second publish (a split stream) a moment to show up, then check it is the only one.
  await new Promise((r) => setTimeout(r, 300));
  expect((await holders(name)).map((h) => h.label)).toEqual([o!.label]);
  return o!;
}

async function register(inst: Instance, body: unknown): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${inst.systemApi}/api/v1/srs/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
}

async function servers(inst: Instance): Promise<{ serverId: string; healthy: boolean; health: { status: string } }[]> {
  const res = await fetch(`${inst.sb.url}/origins/servers`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { servers: { serverId: string; healthy: boolean; health: { status: string } }[] }).servers;
}

async function instance(redisPort: number, configFile: string): Promise<Instance> {
  const [app, systemApi, rtmp, http] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const sb = await startSwitchboard({
    args: ['--config-file', configFile],
    env: {
      HOST: '127.0.0.1',
      APP_PORT: String(app),
      PROXY_SYSTEM_API: String(systemApi),
      PROXY_RTMP_SERVER: String(rtmp),
      PROXY_HTTP_SERVER: String(http),
      PROXY_LOAD_BALANCER_TYPE: 'redis',
      PROXY_REDIS_HOST: '127.0.0.1',
      PROXY_REDIS_PORT: String(redisPort),
    },
  });
  return { sb, systemApi, rtmp, http };
}

beforeAll(async () => {
  if (!haveTools) return;
  dir = mkdtempSync(join(tmpdir(), 'sb-e2e-origins-'));
  clip = join(dir, 'clip.flv');
  // Video only, 4 s, a keyframe a second (nginx cuts 1 s HLS fragments on keyframes).
  const gen = await complete(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-t', '4', '-c:v', 'libx264', '-g', '25', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', clip],
    30_000,
  );
  if (gen.code !== 0) throw new Error(`clip generation failed: ${gen.stderr}`);
  const configFile = join(dir, 'switchboard.yaml');
  writeFileSync(configFile, 'origins:\n  aliveSeconds: 2\n');
  redis = await RedisServer.start();
  const [a, b] = await Promise.all([NginxRtmp.start('127.0.0.1', 4096, { hls: true }), NginxRtmp.start('127.0.0.1', 4096, { hls: true })]);
  origins = [a, b].map((nginx, i) => {
    const label = i === 0 ? 'nginx-a' : 'nginx-b';
    const pid = String(10_000 + i);
    return {
      label,
      nginx,
      id: `${label}-e2esvc-${pid}`,
      beating: true,
      body: { device_id: label, ip: '127.0.0.1', server: label, service: 'e2esvc', pid, rtmp: [String(nginx.rtmpPort)], http: [String(nginx.httpPort)], api: ['1985'] },
    };
  });
  one = await instance(redis.port, configFile);
  two = await instance(redis.port, configFile);
  for (const o of origins) {
    const res = await register(one, o.body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ code: 0, pid: String(one.sb.pid) });
  }
  // SRS's heartbeat: the same body again, here every 500 ms (aliveSeconds is 2).
  heartbeat = setInterval(() => {
    for (const o of origins) if (o.beating) void register(one, o.body).catch(() => undefined);
  }, 500);
  // Both instances see both origins alive (instance 2 through Redis).
  for (const inst of [one, two]) {
    await until(async () => {
      const s = await servers(inst);
      return s.length === 2 && s.every((x) => x.healthy);
    }, 10_000, 'both origins listed healthy');
  }
}, 90_000);

afterAll(async () => {
  if (heartbeat) clearInterval(heartbeat);
  await unpublish(...publishers);
  if (process.env.SB_E2E_LOGS) for (const inst of [one, two]) if (inst) console.log(inst.sb.output());
  await Promise.all([one?.sb.stop(), two?.sb.stop()]);
  await Promise.all(origins.map((o) => o.nginx.stop()));
  await redis?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!haveTools)("origins (seed 003) as SRS's proxy: registration, RTMP and HLS through Switchboard, two instances on Redis", () => {
  /** s1's origin; the origin stopped in the last test. */
  let s1Origin: Origin;
  /** Where each of the many streams went. */
  const placed = new Map<string, Origin>();

  it('publishes over RTMP to exactly one origin; plays it over RTMP and HLS (rewritten playlist, MPEG-TS segment)', async () => {
    const pub = publish(one, 's1');
    s1Origin = await placedOn('s1');

    const probed = await probe(one, 's1');
    expect(probed.code, probed.stderr).toBe(0);
    expect(probed.types).toContain('video:h264');

    // HLS through PROXY_HTTP_SERVER: nginx writes 1 s fragments; wait for a playlist with two.
    const hls = `http://127.0.0.1:${one.http}`;
    const playlist = await until(
      async () => {
        const res = await fetch(`${hls}/live/s1.m3u8`);
        const text = await res.text();
        if (res.status !== 200) return undefined;
        return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length >= 2 ? text : undefined;
      },
      20_000,
      's1 playlist with two segments through Switchboard',
    );
    expect(playlist.startsWith('#EXTM3U')).toBe(true);
    const uris = playlist.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    // Rewritten: absolute paths carrying the session id (spbhid), as SRS's proxy does.
    for (const u of uris) expect(u).toMatch(/^\/live\/s1-\d+\.ts\?spbhid=[A-Za-z0-9_-]{8,64}$/);
    const seg = await fetch(hls + uris[uris.length - 1]!);
    expect(seg.status).toBe(200);
    const bytes = Buffer.from(await seg.arrayBuffer());
    expect(bytes.length).toBeGreaterThan(188);
    expect(bytes[0]).toBe(0x47);
    expect(bytes.length % 188).toBe(0);
    // The same segment from the origin itself: Switchboard asked s1's origin.
    const direct = Buffer.from(await (await fetch(`http://127.0.0.1:${s1Origin.nginx.httpPort}${uris[uris.length - 1]!.split('?')[0]!}`)).arrayBuffer());
    expect(direct.equals(bytes)).toBe(true);
    // Still on s1's origin only, still publishing (kept for the next test).
    expect((await holders('s1')).map((h) => h.label)).toEqual([s1Origin.label]);
    expect(pub.exitCode).toBeNull();
    // The media listeners on /metrics: the publisher and the player relayed, bytes both ways.
    const metrics = await (await fetch(`${one.sb.url}/metrics`)).text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    expect(value('switchboard_media_connections_total{listener="rtmp",outcome="accepted"}')).toBeGreaterThanOrEqual(2);
    expect(value('switchboard_media_active{listener="rtmp"}')).toBeGreaterThanOrEqual(1);
    expect(value('switchboard_media_rtmp_bytes_total{direction="from_client"}')).toBeGreaterThan(10_000);
    expect(value('switchboard_media_rtmp_bytes_total{direction="to_client"}')).toBeGreaterThan(10_000);
    expect(value('switchboard_media_connections_total{listener="http",outcome="accepted"}')).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('a second instance on the same Redis plays over RTMP what the first placed, from the same origin', async () => {
    const probed = await probe(two, 's1');
    expect(probed.code, probed.stderr).toBe(0);
    expect(probed.types).toContain('video:h264');
    expect((await holders('s1')).map((h) => h.label)).toEqual([s1Origin.label]);
    // A publish through instance 2 lands where instance 1 mapped it: s1 is released by its
    // publisher, then published again through instance 2.
    await unpublish(...publishers);
    await until(async () => (await holders('s1')).length === 0, 10_000, 's1 unpublished');
    const again = publish(two, 's1');
    expect((await placedOn('s1')).label).toBe(s1Origin.label);
    await unpublish(again);
  }, 60_000);

  it('refuses a bad registration body with 4xx JSON and a non-zero code, registering nothing', async () => {
    const before = (await servers(one)).map((s) => s.serverId).sort();
    const bad: [unknown, string][] = [
      [{ ip: '127.0.0.1', server: 'bad', service: 'svc', pid: '1', rtmp: [] }, 'body.rtmp'],
      [{ ip: '127.0.0.1', server: 'bad', service: 'svc', pid: '1', rtmp: ['99999'] }, 'body.rtmp[0]'],
      [{ ip: '127.0.0.1', service: 'svc', pid: '1', rtmp: ['1935'] }, 'body.server'],
      [[1, 2], 'body'],
    ];
    for (const [body, field] of bad) {
      const res = await register(one, body);
      expect(res.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(res.status, JSON.stringify(body)).toBeLessThan(500);
      expect(res.type).toMatch(/^application\/json/);
      expect(res.body.code).toEqual(expect.any(Number));
      expect(res.body.code).not.toBe(0);
      expect(res.body.field).toBe(field);
    }
    const notJson = await register(one, '{"ip": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.code).not.toBe(0);
    for (const inst of [one, two]) expect((await servers(inst)).map((s) => s.serverId).sort()).toEqual(before);
  });

  it('spreads many streams over both origins, and each stays on its origin', async () => {
    // Six streams at once (ffmpeg -c copy: cheap); more only if chance put all on one origin.
    let n = 0;
    const round = async (names: string[], via: Instance): Promise<Map<string, Origin>> => {
      const pubs = names.map((name) => publish(via, name));
      try {
        const out = new Map<string, Origin>();
        for (const name of names) out.set(name, await placedOn(name));
        return out;
      } finally {
        await unpublish(...pubs);
      }
    };
    while (n < 12) {
      const names = Array.from({ length: n === 0 ? 6 : 2 }, (_, i) => `m${n + i + 1}`);
      n += names.length;
      for (const [name, o] of await round(names, one)) placed.set(name, o);
      if (new Set([...placed.values()].map((o) => o.label)).size === 2) break;
    }
    const labels = new Set([...placed.values()].map((o) => o.label));
    expect(labels.size, `streams: ${[...placed].map(([k, o]) => `${k}@${o.label}`).join(' ')}`).toBe(2);
    // Published again (through either instance), each goes back to its origin.
    await until(async () => (await Promise.all(origins.map((o) => o.nginx.publishing()))).every((p) => p.length === 0), 10_000, 'all unpublished');
    const names = [...placed.keys()];
    const half = Math.ceil(names.length / 2);
    const again = new Map([...(await round(names.slice(0, half), one)), ...(await round(names.slice(half), two))]);
    for (const name of names) expect(again.get(name)?.label, name).toBe(placed.get(name)!.label);
  }, 120_000);

  it('a stopped origin: once not alive, a new publish of its stream lands on the other origin; a play of its stream fails at once', async () => {
    const dead = s1Origin;
    const other = origins.find((o) => o !== dead)!;
    const deadStream = [...placed].find(([, o]) => o === dead)![0];
    dead.beating = false;
    await dead.nginx.stop();
    for (const inst of [one, two]) {
      await until(async () => (await servers(inst)).some((s) => s.serverId === dead.id && !s.healthy), 10_000, `${dead.label} not alive`);
      expect((await servers(inst)).find((s) => s.serverId === other.id)?.healthy).toBe(true);
    }

    // A play of a stream mapped to the dead origin: refused at once, on both instances.
    for (const inst of [one, two]) {
      const res = await probe(inst, deadStream, 15_000);
      expect(res.code, `${res.stderr} (${res.ms} ms)`).not.toBe(0);
      expect(res.code).not.toBeNull(); // exited by itself, not killed by the timeout
      expect(res.ms).toBeLessThan(5000);
      // Refused by Switchboard (its RTMP error names why), not a connection to the dead port.
      expect(res.stderr).toMatch(/unhealthy/);
      // And over HLS: 503 origin_unavailable, without waiting.
      const started = Date.now();
      const hls = await fetch(`http://127.0.0.1:${inst.http}/live/${deadStream}.m3u8`);
      expect(hls.status).toBe(503);
      expect(((await hls.json()) as { error: string }).error).toBe('origin_unavailable');
      expect(Date.now() - started).toBeLessThan(1000);
    }

    // A new publish of s1 (mapped to the dead origin) is mapped anew, to the other origin.
    const pub = publish(one, 's1');
    expect((await placedOn('s1')).label).toBe(other.label);
    // And instance 2 plays it from there.
    const probed = await probe(two, 's1');
    expect(probed.code, probed.stderr).toBe(0);
    expect(probed.types).toContain('video:h264');
    await unpublish(pub);
  }, 60_000);
});
