/**
 * A proxy worker process (src/proxy/cluster.ts): started by the primary with node:cluster, it
 * proxies on the shared listener and gets everything else from the primary.
 */
import { AggregatorRegistry, Registry } from 'prom-client';
import { createLogger } from '../switchboard.js';
import { NetworkPolicy } from '../security/network-policy.js';
import { IpcDirectory, type FromWorker, type ToWorker } from './cluster.js';
import { openSharedIndexClient, ProxyServer, proxyRateLimiter } from './server.js';

let proxy: ProxyServer | undefined;
let directory: IpcDirectory | undefined;
const send = (m: FromWorker) => process.send?.(m);

process.on('message', (m: ToWorker) => {
  if (m.sb === 'init') void start(m).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    send({ sb: 'failed', message: (err as Error).message, ...(typeof code === 'string' ? { code } : {}) });
    process.exit(1);
  });
  else if (m.sb === 'close') void (proxy?.close(m.graceMs) ?? Promise.resolve()).finally(() => process.exit(0));
  else directory?.onMessage(m);
});
// The primary decides when to stop; a signal to the whole group must not cut requests short.
process.on('SIGTERM', () => undefined);
process.on('SIGINT', () => undefined);
process.on('disconnect', () => process.exit(0));
send({ sb: 'ready' });

async function start(m: Extract<ToWorker, { sb: 'init' }>): Promise<void> {
  const { config } = m;
  const logger = createLogger(config).child({ worker: process.pid });
  directory = new IpcDirectory(m.servers);
  const registry = new Registry();
  // The primary's AggregatorRegistry asks each worker over IPC; prom-client answers only once an
  // AggregatorRegistry was constructed in this process (that adds its message listener):
  // setRegistries alone leaves every scrape of the primary's /metrics to time out (5 s).
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const limiter = await proxyRateLimiter(config, logger);
  const sharedIndexClient = openSharedIndexClient(config);
  proxy = new ProxyServer({ config: config.proxy, pools: m.pools, directory, registry, logger, networkPolicy: NetworkPolicy.fromConfig(config.security), ...(limiter ? { limiter } : {}), ...(sharedIndexClient ? { sharedIndexClient, sharedIndexPrefix: config.store.redis.prefix } : {}) });
  const { port, tlsPort } = await proxy.listen();
  send({ sb: 'listening', port, ...(tlsPort !== undefined ? { tlsPort } : {}) });
}
