import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RtmpProxy, type RtmpMode } from '../../src/proxy/rtmp/proxy.js';
import { stopChild, track } from '../helpers/children.js';
import { complete } from '../helpers/media-tools.js';
import { NginxRtmp, RTMP_MODULE } from '../helpers/nginx-rtmp.js';
import { freePort } from '../helpers/ports.js';

/**
 * The RTMP proxy between real clients (ffmpeg, ffprobe) and two real nginx-rtmp origins.
 * A fixed table decides which origin holds which stream.
 */
const haveTools = existsSync(RTMP_MODULE) && ['/usr/bin/ffmpeg', '/usr/bin/ffprobe', '/usr/sbin/nginx'].every((p) => existsSync(p));

let a: NginxRtmp;
let b: NginxRtmp;
let proxy: RtmpProxy;
let dir: string;
let clip: string;
const resolved: { key: string; mode: RtmpMode }[] = [];
const logs: string[] = [];

function run(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  return child;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const url = (name: string) => `rtmp://127.0.0.1:${proxy.port}/live/${name}`;

/** ffmpeg publishing the clip in a loop, in real time, without re-encoding. */
function publish(name: string): ChildProcess {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'flv', url(name)]);
}

function probe(name: string, timeoutMs = 15_000, extra: string[] = []) {
  return complete('ffprobe', ['-v', 'error', '-rw_timeout', '8000000', '-show_streams', ...extra, '-of', 'json', url(name)], timeoutMs);
}

beforeAll(async () => {
  if (!haveTools) return;
  dir = mkdtempSync(join(tmpdir(), 'sb-rtmp-proxy-'));
  clip = join(dir, 'clip.flv');
  const gen = await complete(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine', '-t', '4', '-c:v', 'libx264', '-g', '25', '-preset', 'ultrafast', '-c:a', 'aac', clip],
    30_000,
  );
  if (gen.code !== 0) throw new Error(`clip generation failed: ${gen.stderr}`);
  // b chunks at 8192, not the proxy's 4096: the client must learn it before the relay starts.
  [a, b] = await Promise.all([NginxRtmp.start(), NginxRtmp.start('127.0.0.1', 8192)]);
  const table: Record<string, NginxRtmp | { host: string; rtmpPort: number }> = {
    '__defaultVhost__/live/alpha': a,
    '__defaultVhost__/live/beta': b,
    '__defaultVhost__/live/dead': { host: '127.0.0.1', rtmpPort: await freePort() },
  };
  const log = (level: string) => (obj: object, msg?: string) => logs.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  proxy = new RtmpProxy({
    host: '127.0.0.1',
    port: 0,
    commandTimeoutMs: 3000,
    logger: { info: log('info'), warn: log('warn'), debug: log('debug') },
    resolve: async (key, mode) => {
      resolved.push({ key, mode });
      const origin = table[key];
      if (!origin) throw new Error(`no origin holds ${key}`);
      return { host: origin.host, port: origin.rtmpPort };
    },
  });
  await proxy.listen();
}, 60_000);

afterAll(async () => {
  if (process.env.RTMP_TEST_LOGS) console.log(logs.join('\n'));
  await proxy?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!haveTools)('RTMP proxy with ffmpeg and nginx-rtmp', () => {
  it('publishes through the proxy to the origin the resolver chose, and plays back through it', async () => {
    const pub = publish('alpha?token=secret');
    try {
      await until(async () => (await a.publishing()).includes('alpha'), 10_000, 'alpha publishing on origin a');
      expect(await b.publishing()).not.toContain('alpha');
      expect(resolved).toContainEqual({ key: '__defaultVhost__/live/alpha', mode: 'publish' });
      // The key drops the query; the origin still gets it.
      expect(a.errorLog()).toMatch(/publish: name='alpha' args='token=secret'/);

      const res = await probe('alpha', 15_000, ['-show_packets', '-read_intervals', '%+#60']);
      expect(res.code, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as { streams: { codec_type: string; codec_name: string }[]; packets: unknown[] };
      expect(out.packets.length).toBeGreaterThanOrEqual(60);
      const streams = out.streams;
      expect(streams.map((s) => s.codec_type).sort()).toEqual(['audio', 'video']);
      expect(streams.find((s) => s.codec_type === 'video')?.codec_name).toBe('h264');
      expect(resolved).toContainEqual({ key: '__defaultVhost__/live/alpha', mode: 'play' });
    } finally {
      await stopChild(pub, 'SIGKILL');
    }
  }, 40_000);

  it('puts two streams on two different origins', async () => {
    const p1 = publish('alpha');
    const p2 = publish('beta');
    try {
      await until(async () => (await a.publishing()).includes('alpha') && (await b.publishing()).includes('beta'), 10_000, 'alpha on a and beta on b');
      expect(await a.publishing()).not.toContain('beta');
      expect(await b.publishing()).not.toContain('alpha');
      await stopChild(p1, 'SIGKILL');
      // Played from the origin with a different chunk size than the proxy's: ~2 s of packets,
      // keyframes (~9 KB) span chunks at 8192 bytes.
      const res = await probe('beta', 15_000, ['-show_packets', '-read_intervals', '%+#80']);
      expect(res.code, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as { streams: { codec_type: string }[]; packets: { codec_type: string; size: string; flags: string }[] };
      expect(out.streams.map((s) => s.codec_type).sort()).toEqual(['audio', 'video']);
      expect(out.packets.length).toBeGreaterThanOrEqual(80);
      expect(out.packets.some((p) => p.codec_type === 'video' && p.flags.startsWith('K') && Number(p.size) > 8192)).toBe(true);
    } finally {
      await Promise.all([stopChild(p1, 'SIGKILL'), stopChild(p2, 'SIGKILL')]);
    }
  }, 30_000);

  it('refuses a play the resolver refuses quickly, with an error status', async () => {
    const res = await probe('nowhere', 10_000);
    expect(res.code).not.toBe(0);
    expect(res.code).not.toBeNull(); // exited by itself, not killed by the timeout
    expect(res.ms).toBeLessThan(5000);
    expect(res.stderr).toMatch(/StreamNotFound|no origin holds|error/i);
    expect(resolved).toContainEqual({ key: '__defaultVhost__/live/nowhere', mode: 'play' });
  }, 20_000);

  it('refuses a publish the resolver refuses with NetStream.Publish.BadName', async () => {
    const res = await complete('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-i', clip, '-c', 'copy', '-f', 'flv', url('gamma')], 10_000);
    expect(res.code).not.toBe(0);
    expect(res.code).not.toBeNull();
    expect(res.ms).toBeLessThan(5000);
    expect(res.stderr).toMatch(/BadName|no origin holds/);
  }, 20_000);

  it('closes the client with a log line when the origin is unreachable', async () => {
    const res = await probe('dead', 10_000);
    expect(res.code).not.toBe(0);
    expect(res.code).not.toBeNull();
    expect(res.ms).toBeLessThan(5000);
    expect(logs.some((l) => l.includes('unreachable') && l.includes('ECONNREFUSED'))).toBe(true);
  }, 20_000);

  it('closes connections that send garbage and keeps serving', async () => {
    const closedAfter = (bytes: Buffer) =>
      new Promise<number>((resolve, reject) => {
        const started = Date.now();
        const s: Socket = connect({ host: '127.0.0.1', port: proxy.port }, () => s.write(bytes));
        s.on('data', () => {});
        s.on('error', () => {});
        s.once('close', () => resolve(Date.now() - started));
        setTimeout(() => reject(new Error('connection still open')), 5000).unref();
      });
    expect(await closedAfter(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).toBeLessThan(1000);
    // A valid handshake, then chunk garbage: a fmt 1 header on an unknown chunk stream.
    const hs = Buffer.concat([Buffer.from([3]), Buffer.alloc(1536), Buffer.alloc(1536)]);
    expect(await closedAfter(Buffer.concat([hs, Buffer.from([0x43, 1, 2, 3, 4, 5, 6, 7, 8])]))).toBeLessThan(1000);
    // A handshake and then silence: closed by the command timeout (3 s here).
    expect(await closedAfter(hs)).toBeGreaterThan(2500);
    // Still serving.
    const pub = publish('beta');
    try {
      await until(async () => (await b.publishing()).includes('beta'), 10_000, 'beta publishing on origin b');
    } finally {
      await stopChild(pub, 'SIGKILL');
    }
  }, 30_000);
});
