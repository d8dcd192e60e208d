import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../src/agent/config.js';
import { jsonLoad, pick } from '../../src/agent/collectors/json.js';
import { parsePrometheusText, parseSelector, prometheusLoad } from '../../src/agent/collectors/prometheus.js';
import { CollectorRunner } from '../../src/agent/collectors/runner.js';
import { srsStreamsLoad, srsSummariesLoad } from '../../src/agent/collectors/srs.js';
import { cpuUtilisation, loadavgPercent, netRates, parseLoadavg, parseNetDev, parseProcStat, SystemCollector } from '../../src/agent/collectors/system.js';
import { firstNumber, parseWcsStats, viewerCount, wcsLoad } from '../../src/agent/collectors/wcs.js';
import { peerAllowed, peersList } from '../../src/agent/responder.js';
import { parseThresholdPairs } from '../../src/cli/agent.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/agent/${name}`, import.meta.url), 'utf8');

describe('WCS statistics page (the seed’s samples)', () => {
  it('reads the first server’s page', () => {
    const stats = parseWcsStats(fixture('wcs-stat.txt'));
    expect(stats.streams_webrtc_in).toBe('1 2');
    expect(stats.streams_viewers).toBe('test/0');
    expect(stats['-----Stream Stats-----']).toBeUndefined();
    expect(wcsLoad(stats)).toEqual({ publishers: 1, subscribers: 0, hls: 0, viewers: 0, connections: 1 });
  });
  it('reads the second server’s page (annotated `test2/0 3`)', () => {
    expect(wcsLoad(parseWcsStats(fixture('wcs-stat-2.txt')))).toEqual({ publishers: 1, subscribers: 0, hls: 0, viewers: 0, connections: 1 });
  });
  it('sums the mapped counters; viewers raise subscribers when more', () => {
    const page = ['streams_webrtc_in=3', 'streams_rtmp_in=2', 'streams_rtsp_in=1', 'streams_rtsp_push_in=4', 'streams_rtmfp_in=9',
      'streams_webrtc_out=10', 'streams_websocket_out=1', 'streams_rtmp_out=2', 'streams_rtsp_out=3', 'streams_hls=7',
      'streams_viewers=a/5,b/40'].join('\n');
    expect(wcsLoad(parseWcsStats(page))).toEqual({ publishers: 10, subscribers: 45, hls: 7, viewers: 45 });
  });
  it('first number, viewer lists, and a page that is not WCS', () => {
    expect(firstNumber('1 2')).toBe(1);
    expect(firstNumber('x')).toBeUndefined();
    expect(viewerCount('test2/0 3')).toBe(0);
    expect(viewerCount('a/2;b/3')).toBe(5);
    expect(() => wcsLoad(parseWcsStats('<html>login</html>'))).toThrow(/not a WCS/);
  });
});

describe('SRS HTTP API (recorded from SRS 6’s shape)', () => {
  it('summaries → cpu as load average % of cores, or utilisation', () => {
    const doc = JSON.parse(fixture('srs-summaries.json')) as unknown;
    expect(srsSummariesLoad(doc)).toEqual({ cpu: 37.5 });
    expect(srsSummariesLoad(doc, 'utilisation').cpu).toBeCloseTo(43);
  });
  it('streams → publishers, subscribers, band in/out', () => {
    expect(srsStreamsLoad(JSON.parse(fixture('srs-streams.json')))).toEqual({ publishers: 2, subscribers: 25, 'band-in': 4, 'band-out': 56 });
  });
  it('an error code or another document is an error', () => {
    expect(() => srsStreamsLoad({ code: 1002 })).toThrow(/code 1002/);
    expect(() => srsSummariesLoad({ code: 0, data: {} })).toThrow(/data.system/);
    expect(() => srsStreamsLoad([])).toThrow(/not a JSON object/);
  });
});

describe('/proc samples', () => {
  it('loadavg → the seed’s cpu', () => {
    expect(parseLoadavg(fixture('proc-loadavg.txt'))).toBe(1.52);
    expect(loadavgPercent(1.52, 4)).toBeCloseTo(38);
    expect(() => parseLoadavg('')).toThrow();
  });
  it('stat → utilisation between two readings', () => {
    const a = parseProcStat(fixture('proc-stat-1.txt'));
    const b = parseProcStat(fixture('proc-stat-2.txt'));
    expect(a).toEqual({ total: 3728158, idle: 3722236 });
    expect(cpuUtilisation(a, b)).toBeCloseTo((400 / 700) * 100);
    expect(cpuUtilisation(a, a)).toBeUndefined();
  });
  it('net/dev → Mbps, all but loopback or one interface', () => {
    const a = parseNetDev(fixture('proc-net-dev-1.txt'));
    const b = parseNetDev(fixture('proc-net-dev-2.txt'));
    expect(Object.keys(a)).toEqual(['lo', 'eth0', 'eth1']);
    expect(a.eth0).toEqual({ rx: 8421903112, tx: 31229800411 });
    const all = netRates(a, b, 10);
    expect(all.in).toBeCloseTo(10);
    expect(all.out).toBeCloseTo(30);
    expect(netRates(a, b, 10, 'lo').in).toBeCloseTo(6.4);
    expect(() => netRates(a, b, 10, 'wlan9')).toThrow(/no interface wlan9/);
  });
  it('the system collector reads a /proc tree: rates from the second reading on', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sb-proc-'));
    mkdirSync(join(root, 'net'));
    writeFileSync(join(root, 'loadavg'), fixture('proc-loadavg.txt'));
    writeFileSync(join(root, 'stat'), fixture('proc-stat-1.txt'));
    writeFileSync(join(root, 'net/dev'), fixture('proc-net-dev-1.txt'));
    const la = new SystemCollector({ procRoot: root, cores: 4 });
    const first = await la.collect();
    expect(first.cpu).toBeCloseTo(38);
    expect(first['band-in']).toBeUndefined();
    writeFileSync(join(root, 'net/dev'), fixture('proc-net-dev-2.txt'));
    const second = await la.collect();
    expect(second['band-in']).toBeGreaterThan(0);
    const util = new SystemCollector({ procRoot: root, cpuMode: 'utilisation', interface: 'eth1' });
    expect((await util.collect()).cpu).toBeUndefined();
    writeFileSync(join(root, 'stat'), fixture('proc-stat-2.txt'));
    const u = await util.collect();
    expect(u.cpu).toBeCloseTo(57.14, 1);
    expect(u['band-in']).toBe(0);
  });
});

describe('JSON load URL', () => {
  it('flat numbers by default', () => {
    expect(jsonLoad({ cpu: 12, consumers: 300, name: 'sfu-1', nested: { x: 1 } })).toEqual({ cpu: 12, consumers: 300 });
  });
  it('fields by JSON pointer or dotted path', () => {
    const doc = { load: { cpu: '41.5', 'a/b': 2 }, workers: [{ consumers: 7 }] };
    expect(jsonLoad(doc, { cpu: '/load/cpu', consumers: 'workers.0.consumers', x: '/load/a~1b' })).toEqual({ cpu: 41.5, consumers: 7, x: 2 });
    expect(pick(doc, '/missing/x')).toBeUndefined();
    expect(() => jsonLoad(doc, { cpu: '/load/none' })).toThrow(/\/load\/none/);
    expect(() => jsonLoad([1, 2])).toThrow(/not an object/);
  });
});

describe('Prometheus text format', () => {
  it('coturn’s exporter: allocations summed over series, or one series by label', () => {
    const samples = parsePrometheusText(fixture('coturn-metrics.txt'));
    expect(samples).toHaveLength(4);
    expect(prometheusLoad(samples, { allocations: 'turn_total_allocations' })).toEqual({ allocations: 42 });
    expect(prometheusLoad(samples, { allocations: 'turn_total_allocations{type="UDP"}' })).toEqual({ allocations: 37 });
    expect(() => prometheusLoad(samples, { allocations: 'turn_total_allocations{type="TLS"}' })).toThrow(/no series/);
  });
  it('node exporter: gauges, exponents, escaped labels, timestamps', () => {
    const samples = parsePrometheusText(fixture('node-exporter-metrics.txt'));
    expect(prometheusLoad(samples, { cpu: 'node_load1', rx: 'node_network_receive_bytes_total{device="eth0"}' })).toEqual({ cpu: 1.52, rx: 8421903112 });
    const fs = samples.find((s) => s.name === 'node_filesystem_avail_bytes')!;
    expect(fs.labels.mountpoint).toBe('/var/lib/a "quoted" path');
    expect(samples.find((s) => s.name === 'node_scrape_collector_success')!.value).toBe(1);
  });
  it('skips bad lines, reads special values; selectors are checked', () => {
    const samples = parsePrometheusText('good 1\nbad{x="1" 2\n{nope} 3\ninf +Inf\nnan NaN\n');
    expect(samples.map((s) => s.name)).toEqual(['good', 'inf', 'nan']);
    expect(prometheusLoad(samples, { a: 'inf', b: 'nan' })).toEqual({ a: 0, b: 0 });
    expect(parseSelector('x{a="1",b="2"}')).toEqual({ name: 'x', labels: { a: '1', b: '2' } });
    expect(() => parseSelector('x{a=1}')).toThrow();
  });
});

describe('collector runner', () => {
  it('keeps the last reading, reports a source failing only after N failures in a row, merges by max', async () => {
    let fail = false;
    let cpu = 10;
    const flaky = { name: 'flaky', collect: async () => (fail ? Promise.reject(new Error('nope')) : { cpu, publishers: 3 }) };
    const steady = { name: 'steady', collect: async () => ({ cpu: 20 }) };
    const runner = new CollectorRunner([
      { collector: flaky, timing: { intervalMs: 20, timeoutMs: 10, failures: 3 } },
      { collector: steady, timing: { intervalMs: 20, timeoutMs: 10, failures: 3 } },
    ]);
    await runner.start();
    expect(runner.load()).toEqual({ cpu: 20, publishers: 3 });
    cpu = 50;
    await new Promise((r) => setTimeout(r, 60));
    expect(runner.load().cpu).toBe(50);
    fail = true;
    await new Promise((r) => setTimeout(r, 25));
    expect(runner.failing()).toEqual([]);
    expect(runner.load().cpu).toBe(50); // last good reading kept
    await new Promise((r) => setTimeout(r, 80));
    expect(runner.failing()).toEqual(['flaky']);
    fail = false;
    await new Promise((r) => setTimeout(r, 40));
    expect(runner.failing()).toEqual([]);
    runner.stop();
  });
  it('a source slower than its timeout fails', async () => {
    const slow = { name: 'slow', collect: (signal: AbortSignal) => new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))) };
    const runner = new CollectorRunner([{ collector: slow, timing: { intervalMs: 1000, timeoutMs: 20, failures: 1 } }]);
    const started = Date.now();
    await runner.start();
    expect(Date.now() - started).toBeLessThan(500);
    expect(runner.failing()).toEqual(['slow']);
    runner.stop();
  });
});

describe('agent configuration and CLI pairs', () => {
  it('pairs as the seed script takes them', () => {
    expect(parseThresholdPairs(['cpu', '70', 'publishers', '200'])).toEqual({ cpu: 70, publishers: 200 });
    expect(() => parseThresholdPairs(['cpu'])).toThrow(/"cpu" has no value/);
    expect(() => parseThresholdPairs(['cpu', 'x'])).toThrow(/"cpu": "x"/);
  });
  it('defaults: the seed’s port and thresholds', () => {
    const c = loadAgentConfig();
    expect(c.port).toBe(9707);
    expect(c.thresholds).toEqual({ cpu: 90, publishers: 100, subscribers: 100, hls: 100, 'band-in': 100, 'band-out': 100 });
    expect(c.weight).toBe('headroom');
    expect(c.sources.system.enabled).toBe(true);
  });
  it('file ← overrides; one message per bad value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-agent-'));
    const file = join(dir, 'sb.yaml');
    writeFileSync(file, ['server:', '  port: 3001', 'agent:', '  port: 9800', '  thresholds: { cpu: 70 }', '  sources:', '    wcs: { url: "http://localhost:8081/?action=stat" }'].join('\n'));
    const c = loadAgentConfig({ file, overrides: { thresholds: { publishers: 200 } } });
    expect(c.port).toBe(9800);
    expect(c.thresholds.cpu).toBe(70);
    expect(c.thresholds.publishers).toBe(200);
    expect(c.sources.wcs?.url).toContain('action=stat');
    writeFileSync(file, ['agent:', '  port: 99999', '  peers: [127.0.0.1, nope]', '  colour: red', '  thresholds: { foo: 3 }', '  weight: half', '  sources:', '    srs: { url: "ftp://x" }'].join('\n'));
    let problems: string[] = [];
    try {
      loadAgentConfig({ file });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems.some((p) => p.startsWith('agent.port'))).toBe(true);
    expect(problems.some((p) => p.includes('colour') && p.includes('unknown key'))).toBe(true);
    expect(problems.some((p) => p.startsWith('agent.weight') && p.includes('headroom'))).toBe(true);
    expect(problems.some((p) => p.startsWith('agent.sources.srs.url'))).toBe(true);
    writeFileSync(file, ['agent:', '  peers: [127.0.0.1, nope]', '  thresholds: { foo: 3 }'].join('\n'));
    try {
      loadAgentConfig({ file });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        expect.stringMatching(/^agent.peers .*"nope"/),
        expect.stringMatching(/^agent.thresholds.foo .*unknown metric/),
      ]);
    }
  });
  it('one file configures both: serve ignores the agent section, the agent reads it (README example)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sb-agent-')), 'both.yaml');
    writeFileSync(file, ['server:', '  port: 3005', 'agent:', '  port: 9707', '  peers: [172.31.42.154, 127.0.0.1]', '  thresholds: { cpu: 70, publishers: 200 }',
      '  sources:', '    wcs: { url: "http://localhost:8081/?action=stat", intervalMs: 2000, timeoutMs: 1500 }',
      '  switchboard:', '    url: http://switchboard:3001', '    pool: rooms', '    serverId: wcs1', '    serviceUrl: http://172.31.44.243:8080'].join('\n'));
    expect(loadConfig({ file, env: {} }).server.port).toBe(3005);
    const c = loadAgentConfig({ file });
    expect(c.peers).toEqual(['172.31.42.154', '127.0.0.1']);
    expect(c.switchboard).toMatchObject({ url: 'http://switchboard:3001', pool: 'rooms', serverId: 'wcs1' });
  });
  it('metric names mapped by a source may have thresholds', () => {
    const c = loadAgentConfig({ overrides: { thresholds: { allocations: 500, load: 2 }, sources: { prometheus: { url: 'http://127.0.0.1:9641/metrics', metrics: { load: 'node_load1' } } } } });
    expect(c.thresholds.load).toBe(2);
  });
});

describe('peers allow-list', () => {
  it('addresses and CIDRs, IPv4-mapped IPv6 included', () => {
    const list = peersList(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
    expect(peerAllowed(list, '127.0.0.1')).toBe(true);
    expect(peerAllowed(list, '::ffff:127.0.0.1')).toBe(true);
    expect(peerAllowed(list, '10.20.30.40')).toBe(true);
    expect(peerAllowed(list, 'fd12::1')).toBe(true);
    expect(peerAllowed(list, '127.0.0.2')).toBe(false);
    expect(peerAllowed(list, '172.31.42.154')).toBe(false);
    expect(peerAllowed(list, undefined)).toBe(false);
    expect(peerAllowed(undefined, '8.8.8.8')).toBe(true);
  });
});

describe('startAgent reading real HTTP sources on loopback', () => {
  it('WCS page, SRS API and a coturn exporter → merged state and the reply on the agent port', async () => {
    const { createServer } = await import('node:http');
    const { connect } = await import('node:net');
    const { startAgent } = await import('../../src/agent/index.js');
    const pages: Record<string, [string, string]> = {
      '/?action=stat': ['text/plain', fixture('wcs-stat.txt')],
      '/api/v1/summaries': ['application/json', fixture('srs-summaries.json')],
      '/api/v1/streams?start=0&count=10000': ['application/json', fixture('srs-streams.json')],
      '/metrics': ['text/plain', fixture('coturn-metrics.txt')],
    };
    const http = createServer((req, res) => {
      const page = pages[req.url ?? ''];
      if (!page) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': page[0] }).end(page[1]);
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
    const config = loadAgentConfig({
      overrides: {
        host: '127.0.0.1',
        port: 0,
        logLevel: 'silent',
        readyAnnounceMs: 0,
        thresholds: { allocations: 100 },
        sources: {
          system: { enabled: false },
          wcs: { url: `${base}/?action=stat` },
          srs: { url: base },
          prometheus: { url: `${base}/metrics`, metrics: { allocations: 'turn_total_allocations' } },
        },
      },
    });
    const agent = await startAgent(config);
    try {
      const s = agent.state();
      // publishers: WCS 1, SRS 2 → 2 (the larger); cpu from SRS 37.5; allocations 42.
      expect(s.load).toMatchObject({ publishers: 2, subscribers: 25, cpu: 37.5, allocations: 42, 'band-out': 56, hls: 0 });
      expect(s.failing).toEqual([]);
      const line = await new Promise<string>((resolve) => {
        let out = '';
        const c = connect(agent.port, '127.0.0.1');
        c.on('data', (d) => (out += d.toString()));
        c.on('close', () => resolve(out));
      });
      // band-out 56 of 100 leaves 44 %, cpu 37.5 of 90 leaves 58 %, allocations 42 of 100 leave 58 %.
      expect(line).toBe('up 44%\n');
      agent.setAdmin('drain');
      expect(agent.state().admin).toBe('drain');
    } finally {
      await agent.close();
      await new Promise((r) => http.close(r));
    }
  });
});
