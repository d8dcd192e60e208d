import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../config/load.js';
import { loadAgentConfig } from '../agent/config.js';
import { createAgentLogger, startAgent } from '../agent/index.js';
import { port } from './serve.js';

/**
 * `switchboard agent [name value]...`: the seed's agent-check script and xinetd service in one
 * process (src/agent/). Thresholds are pairs, as the seed's script takes them:
 * `switchboard agent cpu 70 publishers 200`.
 */

/** Threshold pairs → { name: limit }. Throws naming the bad pair. */
export function parseThresholdPairs(args: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!;
    const text = args[i + 1];
    if (text === undefined) throw new Error(`threshold "${name}" has no value (write pairs: cpu 70 publishers 200)`);
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new Error(`threshold "${name}": "${text}" is not a non-negative number`);
    out[name] = n;
  }
  return out;
}

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];
const pairs = (list: string[] | undefined, what: string): Record<string, string> | undefined => {
  if (!list) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`${what} "${item}": write name=value`);
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return out;
};

interface AgentCliOptions {
  configFile?: string;
  port?: number;
  host?: string;
  peers?: string;
  wcsUrl?: string;
  srsUrl?: string;
  jsonUrl?: string;
  jsonField?: string[];
  prometheusUrl?: string;
  metric?: string[];
  system?: boolean;
  cpuMode?: string;
  interface?: string;
  weight?: string;
  maxconn?: number;
  failures?: number;
  interval?: number;
  timeout?: number;
  stateFile?: string;
  drainHold?: number;
  logLevel?: string;
}

/** The command line as a partial `agent:` section (it overrides the file's). */
function overridesFrom(o: AgentCliOptions, thresholds: Record<string, number>): Record<string, unknown> {
  const t: Record<string, unknown> = {};
  const sources: Record<string, unknown> = {};
  if (Object.keys(thresholds).length > 0) t.thresholds = thresholds;
  if (o.port !== undefined) t.port = o.port;
  if (o.host !== undefined) t.host = o.host;
  if (o.peers !== undefined) t.peers = o.peers.split(/[\s,]+/).filter(Boolean);
  if (o.weight !== undefined) t.weight = o.weight;
  if (o.maxconn !== undefined) t.maxconn = o.maxconn;
  if (o.failures !== undefined) t.failures = o.failures;
  if (o.interval !== undefined) t.intervalMs = o.interval;
  if (o.timeout !== undefined) t.timeoutMs = o.timeout;
  if (o.stateFile !== undefined) t.stateFile = o.stateFile;
  if (o.drainHold !== undefined) t.drainHoldMs = o.drainHold;
  if (o.logLevel !== undefined) t.logLevel = o.logLevel;
  const system: Record<string, unknown> = {};
  if (o.system === false) system.enabled = false;
  if (o.cpuMode !== undefined) system.cpuMode = o.cpuMode;
  if (o.interface !== undefined) system.interface = o.interface;
  if (Object.keys(system).length > 0) sources.system = system;
  if (o.wcsUrl !== undefined) sources.wcs = { url: o.wcsUrl };
  if (o.srsUrl !== undefined) sources.srs = { url: o.srsUrl, ...(o.cpuMode !== undefined ? { cpuMode: o.cpuMode } : {}) };
  const fields = pairs(o.jsonField, '--json-field');
  if (o.jsonUrl !== undefined || fields) sources.json = { ...(o.jsonUrl !== undefined ? { url: o.jsonUrl } : {}), ...(fields ? { fields } : {}) };
  const metrics = pairs(o.metric, '--metric');
  if (o.prometheusUrl !== undefined || metrics) sources.prometheus = { ...(o.prometheusUrl !== undefined ? { url: o.prometheusUrl } : {}), ...(metrics ? { metrics } : {}) };
  if (Object.keys(sources).length > 0) t.sources = sources;
  return t;
}

export function addAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the load agent beside a media server: HAProxy agent-check port (seed 004) and optional registration with Switchboard')
    .argument('[thresholds...]', 'threshold pairs as the seed script takes them: cpu 70 publishers 200 (cpu, publishers, subscribers, hls, band-in, band-out, ...)')
    .option('-c, --config-file <file>', 'YAML file; its `agent:` section (command-line options override it)')
    .option('-p, --port <port>', 'agent-check port (default 9707)', port)
    .option('--host <address>', 'address to listen on (default 0.0.0.0)')
    .option('--peers <list>', "who may ask, like xinetd's only_from: addresses and CIDRs, comma-separated")
    .option('--wcs-url <url>', 'WCS statistics page, e.g. http://localhost:8081/?action=stat')
    .option('--srs-url <url>', 'SRS HTTP API base, e.g. http://127.0.0.1:1985')
    .option('--json-url <url>', 'a JSON load URL ({"cpu": 12, "consumers": 300})')
    .option('--json-field <metric=path>', 'read a metric from a JSON pointer (/load/cpu) or dotted path; repeatable', collect)
    .option('--prometheus-url <url>', 'a Prometheus exporter (/metrics)')
    .option('--metric <name=metric>', 'agent metric from a Prometheus metric, e.g. allocations=turn_total_allocations; repeatable', collect)
    .option('--no-system', 'do not read CPU and network from /proc')
    .addOption(new Option('--cpu-mode <mode>', 'cpu: load average % of cores (the seed) or utilisation').choices(['loadavg', 'utilisation']))
    .option('--interface <name>', 'network interface for band-in/out (default: all but loopback)')
    .addOption(new Option('--weight <mode>', 'up replies: headroom (up 37%), full (up 100%), none (up)').choices(['headroom', 'full', 'none']))
    .option('--maxconn <n>', 'also answer maxconn:N', positiveInt)
    .option('--failures <n>', 'consecutive failures before a source counts as down (default 3)', positiveInt)
    .option('--interval <ms>', 'default collection interval (default 2000)', positiveInt)
    .option('--timeout <ms>', 'default collection timeout (default 1500)', positiveInt)
    .option('--state-file <file>', 'file holding ready, drain or maint (read every second)')
    .option('--drain-hold <ms>', 'on SIGTERM, answer drain this long before exiting (default 5000)', (v) => (v === '0' ? 0 : positiveInt(v)))
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (args: string[], opts: AgentCliOptions) => {
      let config;
      try {
        const thresholds = parseThresholdPairs(args);
        config = loadAgentConfig({
          ...(opts.configFile ? { file: opts.configFile } : {}),
          overrides: overridesFrom(opts, thresholds),
          cliThresholds: Object.keys(thresholds),
        });
      } catch (err) {
        if (err instanceof ConfigError) console.error(`switchboard agent: ${err.message}\nFix the values above (see README.md, "Agent (seed 004)") and start again.`);
        else console.error(`switchboard agent: ${(err as Error).message}`);
        process.exit(2);
      }
      const logger = createAgentLogger(config);
      let agent;
      try {
        agent = await startAgent(config, logger);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') console.error(`switchboard agent: port ${config.port} is in use; choose another with --port`);
        else console.error(`switchboard agent: failed to start: ${e.stack ?? e.message}`);
        process.exit(1);
      }
      let draining = false;
      process.on('SIGUSR2', () => {
        draining = !draining;
        agent.setAdmin(draining ? 'drain' : 'ready');
      });
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) process.exit(0); // asked twice: do not wait
        stopping = true;
        logger.info({ signal, holdMs: config.drainHoldMs }, 'draining, then exiting');
        const hold = new Promise((r) => setTimeout(r, config.drainHoldMs));
        void Promise.all([agent.drain(), hold])
          .catch((err: unknown) => logger.error({ err }, 'drain failed'))
          .then(() => agent.close())
          .finally(() => process.exit(0));
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    });
}
