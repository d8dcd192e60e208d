import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import type { AgentConfig } from './config.js';
import type { Collector, SourceTiming } from './collectors/collector.js';
import { JsonCollector } from './collectors/json.js';
import { PrometheusCollector } from './collectors/prometheus.js';
import { CollectorRunner } from './collectors/runner.js';
import { SrsCollector } from './collectors/srs.js';
import { SystemCollector } from './collectors/system.js';
import { WcsCollector } from './collectors/wcs.js';
import { startRegistration, type RegistrationOptions } from './registration.js';
import { startResponder, type Responder } from './responder.js';
import type { AgentState, LoadSource } from './types.js';

/**
 * `switchboard agent`, wired: collectors feed the last known load; the agent-check responder
 * answers HAProxy from it; with a `switchboard` section, registration heartbeats it to Switchboard.
 */
export interface Agent extends LoadSource {
  /** The agent-check port actually bound. */
  readonly port: number;
  /** Sets the operator's admin state (`drain` → HAProxy sees `drain`). */
  setAdmin(admin: AgentState['admin']): void;
  /** Drains: admin `drain`, then the registration's drain (waits for rooms, deregisters) if any. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export function createAgentLogger(config: Pick<AgentConfig, 'logLevel'>): Logger {
  return pino({ level: config.logLevel, base: { service: 'switchboard-agent' } });
}

/** The configured collectors with their timings. */
export function buildCollectors(config: AgentConfig): { collector: Collector; timing: SourceTiming }[] {
  const s = config.sources;
  const timing = (t: { intervalMs?: number; timeoutMs?: number; failures?: number }): SourceTiming => ({
    intervalMs: t.intervalMs ?? config.intervalMs,
    timeoutMs: t.timeoutMs ?? config.timeoutMs,
    failures: t.failures ?? config.failures,
  });
  const out: { collector: Collector; timing: SourceTiming }[] = [];
  if (s.system.enabled) {
    out.push({
      collector: new SystemCollector({ cpuMode: s.system.cpuMode, ...(s.system.interface !== undefined ? { interface: s.system.interface } : {}) }),
      timing: timing(s.system),
    });
  }
  if (s.wcs) out.push({ collector: new WcsCollector(s.wcs.url), timing: timing(s.wcs) });
  if (s.srs) out.push({ collector: new SrsCollector(s.srs.url, s.srs.cpuMode), timing: timing(s.srs) });
  if (s.json) out.push({ collector: new JsonCollector(s.json.url, s.json.fields, s.json.headers), timing: timing(s.json) });
  if (s.prometheus) out.push({ collector: new PrometheusCollector(s.prometheus.url, s.prometheus.metrics), timing: timing(s.prometheus) });
  return out;
}

const ADMIN_WORDS = new Set(['ready', 'drain', 'maint']);

export async function startAgent(config: AgentConfig, logger: Logger = createAgentLogger(config)): Promise<Agent> {
  const runner = new CollectorRunner(buildCollectors(config), logger);
  let admin: AgentState['admin'] = 'ready';
  let fileAdmin: AgentState['admin'] | undefined;
  // Replies carry `ready` until this time (see reply.ts): after start and after leaving drain/maint.
  let readyUntil = Date.now() + config.readyAnnounceMs;
  const effectiveAdmin = (): AgentState['admin'] => (admin !== 'ready' ? admin : (fileAdmin ?? 'ready'));

  const source: LoadSource = {
    state: () => ({ load: runner.load(), failing: runner.failing(), admin: effectiveAdmin() }),
  };
  const setAdmin = (next: AgentState['admin'], by: string) => {
    const before = effectiveAdmin();
    if (by === 'file') fileAdmin = next;
    else admin = next;
    const after = effectiveAdmin();
    if (after === before) return;
    if (after === 'ready') readyUntil = Date.now() + config.readyAnnounceMs;
    logger.info({ admin: after, by }, 'admin state');
  };

  // First readings before answering, so HAProxy's first check sees real load (bounded by timeouts).
  await runner.start();

  let stateTimer: NodeJS.Timeout | undefined;
  if (config.stateFile) {
    const file = config.stateFile;
    const readState = async () => {
      try {
        const word = (await readFile(file, 'utf8')).trim().split(/\s+/)[0]?.toLowerCase() ?? '';
        setAdmin(ADMIN_WORDS.has(word) ? (word as AgentState['admin']) : 'ready', 'file');
      } catch {
        setAdmin('ready', 'file'); // no file: no operator request
      }
    };
    await readState();
    stateTimer = setInterval(() => void readState(), 1_000);
    stateTimer.unref();
  }

  let responder: Responder;
  try {
    responder = await startResponder(source, {
      host: config.host,
      port: config.port,
      ...(config.peers ? { peers: config.peers } : {}),
      reply: { thresholds: config.thresholds, weight: config.weight, ...(config.maxconn !== undefined ? { maxconn: config.maxconn } : {}) },
      announceReady: () => Date.now() < readyUntil,
      logger,
    });
  } catch (err) {
    runner.stop();
    clearInterval(stateTimer);
    throw err;
  }

  let registration: { drain(): Promise<void>; stop(): Promise<void> } | undefined;
  if (config.switchboard) {
    const sb = config.switchboard;
    const options = { ...sb, pool: sb.pool ?? 'rooms', serverId: sb.serverId ?? hostname() } as RegistrationOptions;
    try {
      registration = startRegistration(options, source, logger);
    } catch (err) {
      await responder.close();
      runner.stop();
      clearInterval(stateTimer);
      throw err;
    }
  }

  logger.info(
    {
      host: config.host,
      port: responder.port,
      peers: config.peers ?? 'any',
      thresholds: config.thresholds,
      weight: config.weight,
      sources: runner.names(),
      ...(config.switchboard ? { switchboard: config.switchboard.url } : {}),
    },
    'agent listening',
  );

  let closed = false;
  return {
    port: responder.port,
    state: source.state,
    setAdmin: (a) => setAdmin(a, 'api'),
    async drain() {
      setAdmin('drain', 'api');
      await registration?.drain();
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(stateTimer);
      runner.stop();
      await registration?.stop();
      await responder.close();
    },
  };
}
