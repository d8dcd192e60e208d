import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.js';

/**
 * `algorithm: metrics` against a real Prometheus that scrapes a small exporter: the TURN server
 * the exporter reports least loaded is chosen, and the choice follows the load.
 */
const load: Record<string, number> = { '127.0.0.1': 50, '127.0.0.2': 5 };
let exporter: HttpServer;
let listeners: TcpServer[];
let prometheus: Prometheus;
let sb: Switchboard;

async function listen(host: string): Promise<TcpServer> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(0, host, () => r()));
  return s;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The chosen server, only when it was chosen by load (not at random while data is missing). */
const chosenByLoad = async () => {
  const server = await chosen();
  const metrics = await (await fetch(`${sb.url}/metrics`)).text();
  return metrics.includes(`switchboard_turn_selections_total{server="${server}",basis="load"}`) ? server : undefined;
};
const chosen = async () => ((await (await fetch(`${sb.url}/coturn`)).json()) as { turn_server: string }).turn_server;

beforeAll(async () => {
  exporter = createHttpServer((_req, res) => {
    const lines = Object.entries(load).map(([ip, v]) => `node_netstat_Tcp_CurrEstab{ip="${ip}"} ${v}`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`# TYPE node_netstat_Tcp_CurrEstab gauge\n${lines.join('\n')}\n`);
  });
  await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', () => r()));
  const exporterPort = (exporter.address() as { port: number }).port;

  prometheus = await startPrometheus(`global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: turn\n    static_configs:\n      - targets: ['127.0.0.1:${exporterPort}']\n`);

  listeners = [await listen('127.0.0.1'), await listen('127.0.0.2')];
  const config = loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' } });
  config.turn.servers = listeners.map((l) => ({ host: (l.address() as { address: string }).address, port: (l.address() as { port: number }).port }));
  config.turn.healthCheck = { intervalSeconds: 0.3, timeoutSeconds: 0.2, successThreshold: 1, failureThreshold: 1, protocol: 'tcp' };
  config.turn.loadBalancer = {
    algorithm: 'metrics',
    intervalMinutes: 1 / 60, // every second
    durationMinutes: 0.25,
    timeoutSeconds: 2,
    stepSeconds: 1,
    minPoints: 2,
    prometheus: { endpoint: '127.0.0.1', port: prometheus.port, query: 'sum(node_netstat_Tcp_CurrEstab{ip=~"%s"}) by(ip)' },
  };
  sb = await startSwitchboard(config);
}, 40_000);

afterAll(async () => {
  await sb?.close();
  for (const l of listeners ?? []) l.close();
  exporter?.close();
  await prometheus?.stop();
});

describe('TURN metrics algorithm with a real Prometheus', () => {
  it('chooses the server Prometheus reports least loaded, and follows the load', async () => {
    await until(async () => (await chosenByLoad()) === '127.0.0.2', 20_000, '127.0.0.2 (5 connections) to be chosen by load');
    for (let i = 0; i < 10; i++) expect(await chosen()).toBe('127.0.0.2');
    load['127.0.0.2'] = 5000;
    await until(async () => (await chosenByLoad()) === '127.0.0.1', 20_000, 'the choice to move to 127.0.0.1 by load');
  }, 45_000);

  it('switches at once when the chosen server turns unhealthy', async () => {
    expect(await chosen()).toBe('127.0.0.1');
    listeners[0]!.close();
    await until(async () => (await chosen()) === '127.0.0.2', 3000, 'switch away from the dead server');
  });
});
