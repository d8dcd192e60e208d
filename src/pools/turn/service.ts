import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { ProbeOutcome } from '../../core/health.js';
import type { Server } from '../../core/model.js';
import { policies } from '../../core/policies/index.js';
import { AppError, notFound } from '../../errors.js';
import type { Metrics } from '../../metrics/registry.js';
import { agentAttributes } from '../../probes/agent-check.js';
import { StunProber } from '../../probes/stun.js';
import { probeTcp, probeTls } from '../../probes/tcp.js';
import { NetworkPolicy } from '../../security/network-policy.js';
import type { StateStore } from '../../store/store.js';
import { turnCredentials } from './credentials.js';
import { meanLoadByAddress } from './prometheus.js';
import { chooseTurnServer, withLoad, type TurnChoice } from './selection.js';

export const TURN_POOL = 'turn';

/** TURN servers have no capacity limit of their own here; load only orders them. */
const UNBOUNDED = 1e12;

export interface TurnRegistration {
  serverId?: string;
  /** Public address or name: what clients are told. */
  host: string;
  /** Private address: what is probed and matched against metrics (the public one if unset). */
  privateAddress?: string;
  port?: number;
  tlsPort?: number;
  region?: string;
  /** HAProxy-style agent (probes/agent-check.ts), asked at the probed address. */
  agentPort?: number;
  agentSend?: string;
}

export interface IceServers {
  iceServers: { urls: string[]; username?: string; credential?: string }[];
  ttl: number;
}

export interface TurnServiceDeps {
  store: StateStore;
  config: Config['turn'];
  metrics: Metrics;
  logger?: Logger;
  random?: () => number;
  now?: () => number;
  /**
   * The SSRF guard. Every probe connection goes through it (configured servers too: a configured
   * server in a refused range fails its probes with ERR_FORBIDDEN_DESTINATION, and start() logs a
   * warning). Registration-time checks are for API registrations only (routes/turn.ts).
   */
  networkPolicy?: NetworkPolicy;
}

const bracket = (host: string) => (host.includes(':') ? `[${host}]` : host);

/**
 * TURN pools (seed 001): health-checked TURN servers, chosen by load (Prometheus or reported
 * allocations) or at random, with TURN REST API credentials coturn accepts.
 */
export class TurnService {
  /** STUN probes of all TURN servers share one socket. */
  private readonly stun: StunProber;
  /** The SSRF guard on probes (the default policy when none is given). */
  private readonly policy: NetworkPolicy;
  private readonly random: () => number;
  private readonly now: () => number;
  /** Load per server id from the last Prometheus query (the `metrics` algorithm). */
  private metricsLoad = new Map<string, number>();
  private current: TurnChoice | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly d: TurnServiceDeps) {
    this.random = d.random ?? Math.random;
    this.now = d.now ?? Date.now;
    this.policy = d.networkPolicy ?? new NetworkPolicy();
    this.stun = new StunProber({ policy: this.policy });
  }

  /** Registers the configured servers (unless already known as configured) and starts load polling. */
  async start(): Promise<void> {
    for (const s of this.d.config.servers) {
      const probed = s.privateAddress ?? s.host;
      const refused = isIP(probed) ? this.policy.refusal(probed) : undefined;
      if (refused) this.d.logger?.warn({ server: s.host, address: probed, reason: refused }, 'configured TURN server is a refused destination; its probes will fail (see security.allowedNetworks)');
      const existing = this.d.store.getServer(TURN_POOL, s.host);
      const wanted = this.endpoints(s);
      if (existing && JSON.stringify(existing.endpoints) === JSON.stringify(wanted) && existing.region === s.region) continue;
      await this.register({ ...s, serverId: s.host });
    }
    // The chosen server turning unhealthy switches the choice at once.
    this.unsubscribe = this.d.store.subscribe((e) => {
      if (e.pool !== TURN_POOL) return;
      if ((e.type === 'server' && e.server.id === this.current?.server.id && e.server.health.status !== 'healthy') || (e.type === 'server-removed' && e.id === this.current?.server.id)) {
        this.current = undefined;
      }
    });
    const lb = this.d.config.loadBalancer;
    if (lb.algorithm !== 'random' && lb.prometheus.endpoint) {
      const poll = () => void this.refreshLoad().finally(() => (this.timer = setTimeout(poll, lb.intervalMinutes * 60_000).unref()));
      poll();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.unsubscribe?.();
    this.stun.close();
  }

  async register(input: TurnRegistration): Promise<Server> {
    const { server } = await this.d.store.registerServer(
      TURN_POOL,
      {
        id: input.serverId ?? input.host,
        kind: 'turn',
        serviceUrl: `turn:${bracket(input.host)}:${input.port ?? this.d.config.port}`,
        endpoints: this.endpoints(input),
        capacity: UNBOUNDED,
        initialHealth: 'unknown',
        attributes: agentAttributes({ agentPort: input.agentPort, agentHost: input.privateAddress ?? input.host, agentSend: input.agentSend }, 100, UNBOUNDED),
        ...(input.region !== undefined ? { region: input.region } : {}),
      },
      this.now(),
    );
    this.current = undefined;
    return server;
  }

  async heartbeat(serverId: string, load: Record<string, number> | undefined): Promise<Server> {
    const reported = load ? { ...load, ...(load.allocations !== undefined ? { units: load.allocations } : {}) } : undefined;
    const server = await this.d.store.heartbeat(TURN_POOL, serverId, reported, this.now());
    if (!server) throw new AppError(404, 'unknown_server', `TURN server "${serverId}" is not registered: POST /turn/register first`, { field: 'serverId', reason: 'not registered' });
    return server;
  }

  async deregister(serverId: string): Promise<Server> {
    const { server } = await this.d.store.deregisterServer(TURN_POOL, serverId);
    if (!server) throw notFound('TURN server', 'id', serverId);
    return server;
  }

  listServers(): Server[] {
    return this.d.store.listServers(TURN_POOL);
  }

  /** The health probe for one TURN server, by the configured protocol, on its private address. */
  probe(server: Server): Promise<ProbeOutcome> {
    const hc = this.d.config.healthCheck;
    const host = server.endpoints.private ?? server.endpoints.public ?? server.id;
    const port = hc.port ?? Number(server.endpoints.port ?? this.d.config.port);
    const timeoutMs = hc.timeoutSeconds * 1000;
    if (hc.protocol === 'stun') return this.stun.probe(host, port, timeoutMs);
    if (hc.protocol === 'tls') return probeTls(host, Number(server.endpoints.tlsPort ?? port), timeoutMs, { policy: this.policy });
    return probeTcp(host, port, timeoutMs, this.policy);
  }

  /** The current choice (seed 001's `turn_server`), recomputed when it is gone or unhealthy. */
  choice(): TurnChoice | undefined {
    const servers = this.listServers();
    const current = this.current && servers.find((s) => s.id === this.current!.server.id);
    if (!current || current.health.status !== 'healthy' || current.adminState !== 'active' || this.current!.basis === 'no-healthy') {
      this.current = chooseTurnServer(servers, this.loads(servers), this.random);
    }
    return this.current;
  }

  /** `GET /coturn`, in the seed's exact shape. */
  coturn(): { turn_data: Record<string, { failed_checks: number; healthy: boolean; initial: number; success_th: number }>; turn_server: string } {
    const choice = this.choice();
    if (!choice) throw new AppError(503, 'no_turn_server', 'no TURN server is configured or registered');
    const turnData: Record<string, { failed_checks: number; healthy: boolean; initial: number; success_th: number }> = {};
    for (const s of this.listServers()) {
      turnData[s.endpoints.public ?? s.id] = {
        failed_checks: s.health.failures,
        healthy: s.health.status === 'healthy',
        initial: s.health.status === 'unknown' ? 1 : 0,
        success_th: s.health.successes,
      };
    }
    this.d.metrics.turnSelections.inc({ server: choice.server.id, basis: choice.basis });
    return { turn_data: turnData, turn_server: choice.server.endpoints.public ?? choice.server.id };
  }

  /** Whether a healthy server is selected (seed 001's `/p/health_check`). */
  healthy(): boolean {
    const choice = this.choice();
    return choice !== undefined && choice.basis !== 'no-healthy';
  }

  /**
   * ICE servers for one client: a healthy server chosen by power of two choices over load (so
   * simultaneous requests spread), with TURN REST API credentials.
   */
  iceServers(user: string, region?: string): IceServers {
    const servers = this.listServers();
    const server = policies['power-of-two-choices'](withLoad(servers, this.loads(servers)), { units: 0, ...(region ? { region } : {}) }, this.random);
    if (!server) throw new AppError(503, 'no_healthy_turn_server', 'no healthy TURN server is available');
    this.d.metrics.turnSelections.inc({ server: server.id, basis: 'ice-servers' });
    const host = bracket(server.endpoints.public ?? server.id);
    const port = server.endpoints.port ?? String(this.d.config.port);
    const urls = [`turn:${host}:${port}?transport=udp`, `turn:${host}:${port}?transport=tcp`];
    const tlsPort = server.endpoints.tlsPort ?? (this.d.config.tlsPort !== undefined ? String(this.d.config.tlsPort) : undefined);
    if (tlsPort) urls.push(`turns:${host}:${tlsPort}?transport=tcp`);
    const ttl = this.d.config.credentialTtlSeconds;
    const secret = this.signingSecret();
    if (!secret) return { iceServers: [{ urls }], ttl };
    const { username, credential } = turnCredentials(secret, user, ttl, this.now());
    return { iceServers: [{ urls, username, credential }], ttl };
  }

  private signingSecret(): string | undefined {
    const s = this.d.config.secret;
    return Array.isArray(s) ? s[0] : s;
  }

  private endpoints(s: { host: string; privateAddress?: string; port?: number; tlsPort?: number }): Record<string, string> {
    const e: Record<string, string> = { public: s.host, private: s.privateAddress ?? s.host };
    if (s.port !== undefined) e.port = String(s.port);
    if (s.tlsPort !== undefined) e.tlsPort = String(s.tlsPort);
    return e;
  }

  /** Load per server id: Prometheus means, else reported allocations (least-allocations). */
  private loads(servers: Server[]): Map<string, number> {
    const algorithm = this.d.config.loadBalancer.algorithm;
    if (algorithm === 'random') return new Map();
    if (this.metricsLoad.size > 0) return this.metricsLoad;
    if (algorithm !== 'least-allocations') return new Map();
    return new Map(servers.filter((s) => s.reported?.units !== undefined).map((s) => [s.id, s.reported!.units!]));
  }

  /** One Prometheus query for the healthy servers' private addresses; failures keep the last data. */
  async refreshLoad(): Promise<void> {
    const lb = this.d.config.loadBalancer;
    const healthy = this.listServers().filter((s) => s.health.status === 'healthy');
    if (!lb.prometheus.endpoint || healthy.length === 0) return;
    const byAddress = new Map(healthy.map((s) => [s.endpoints.private ?? s.id, s.id]));
    try {
      const means = await meanLoadByAddress(
        { endpoint: lb.prometheus.endpoint, query: lb.prometheus.query, ...(lb.prometheus.port !== undefined ? { port: lb.prometheus.port } : {}) },
        [...byAddress.keys()],
        { durationMinutes: lb.durationMinutes, timeoutMs: lb.timeoutSeconds * 1000, nowMs: this.now(), minPoints: lb.minPoints, stepSeconds: lb.stepSeconds },
      );
      this.metricsLoad = new Map([...means].map(([address, mean]) => [byAddress.get(address)!, mean]));
      this.current = undefined;
      this.d.logger?.debug({ load: Object.fromEntries(this.metricsLoad) }, 'TURN load from Prometheus');
    } catch (err) {
      this.d.logger?.warn({ err: (err as Error).message }, 'Prometheus query for TURN load failed; keeping the last data');
    }
  }
}
