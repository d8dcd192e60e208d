import type { Logger } from 'pino';
import { downSince, healthChanged, nextHealth, type HealthThresholds, type ProbeOutcome } from '../core/health.js';
import type { LostPlacement, Server } from '../core/model.js';
import type { StateStore } from '../store/store.js';
import { AGENT_ATTR, planAgent, type AgentCheckResult, type MaxconnMode } from './agent-check.js';

export interface HealthCheckerOptions {
  store: StateStore;
  pool: string;
  /** This instance's identity, for probe leases. */
  instanceId: string;
  intervalMs: number;
  thresholds: HealthThresholds;
  /** Placements on a server unhealthy for this long are released (0 = at once). */
  lostAfterMs: number;
  concurrency: number;
  /** Probe at once on start instead of after one interval (servers that start `unknown`). */
  immediate?: boolean;
  probe: (server: Server) => Promise<ProbeOutcome>;
  onLost: (lost: LostPlacement[]) => void;
  onProbe?: (server: Server, outcome: ProbeOutcome) => void;
  /**
   * HAProxy-style agent check (probes/agent-check.ts), asked in the same leased round as `probe`:
   * its `down` fails the server's probe, `drain`/`maint`/`ready` set the admin state (never one an
   * operator set), `NN%` the weight, `maxconn:N` the capacity or `attributes.maxconn`.
   * `query` resolves undefined for servers without an agent.
   */
  agent?: { query: (server: Server) => Promise<AgentCheckResult | undefined>; maxconn: MaxconnMode };
  logger?: Logger;
}

/**
 * Active health checking for one pool. Every interval it takes the leases of the servers it is to
 * probe — with several instances on one Redis each server is probed by one instance at a time,
 * and another takes over when that one stops renewing — probes them, runs each outcome through
 * the health state machine, and writes back only what changed.
 */
export class HealthChecker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(private readonly o: HealthCheckerOptions) {}

  start(): void {
    this.stopped = false;
    this.schedule(this.o.immediate ? 0 : this.o.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      this.running = this.round()
        .catch((err: Error) => this.o.logger?.warn({ err: err.message, pool: this.o.pool }, 'health check round failed'))
        .finally(() => {
          this.running = undefined;
          this.schedule(Math.max(0, this.o.intervalMs - (Date.now() - started)));
        });
    }, delayMs);
    this.timer.unref();
  }

  /** One probe round; public so tests and tools can run one without waiting. */
  async round(): Promise<void> {
    const { store, pool } = this.o;
    // Servers in maint are not probed, except those their agent put there: only the agent is
    // asked about them, since only its `ready` ends that state.
    const servers = store.listServers(pool).filter((s) => s.adminState !== 'maint' || (this.o.agent && s.attributes[AGENT_ATTR.admin] === 'maint'));
    if (servers.length === 0 || !store.available()) return;
    // A lease outlives two rounds, so a holder that misses one round keeps it, and a dead
    // holder's servers are taken over within about two intervals.
    const held = new Set(await store.acquireLeases(pool, this.o.instanceId, servers.map((s) => s.id), this.o.intervalMs * 2 + 1000));
    const mine = servers.filter((s) => held.has(s.id));
    let next = 0;
    const worker = async () => {
      while (next < mine.length && !this.stopped) await this.check(mine[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, mine.length) }, worker));
  }

  private async check(server: Server): Promise<void> {
    const { store, pool } = this.o;
    const maint = server.adminState === 'maint'; // here only for its agent (see round)
    // The agent is asked alongside the regular probe; both verdicts are applied below.
    const [probed, agent] = await Promise.all([maint ? undefined : this.o.probe(server), this.o.agent?.query(server)]);
    if (probed) this.o.onProbe?.(server, probed);
    // Re-read: the server may have changed (or re-registered) while the probe ran.
    let current = store.getServer(pool, server.id);
    if (!current || current.epoch !== server.epoch) return;
    let outcome = probed;
    if (this.o.agent) {
      const plan = planAgent(current, agent, this.o.agent.maxconn);
      if (plan.patch || plan.admin) {
        this.o.logger?.info({ pool, server: server.id, agent: agent?.ok ? agent.raw : undefined, patch: plan.patch, adminState: plan.admin }, 'applying agent reply');
      }
      if (plan.patch) current = (await store.patchServer(pool, server.id, plan.patch)) ?? current;
      // Conditional on the state the plan was made from: an operator's change made meanwhile wins
      // (the plan's ownership record then no longer matches, and the next round drops it).
      if (plan.admin) current = (await store.setAdminState(pool, server.id, plan.admin, current.adminState)) ?? current;
      if (current.epoch !== server.epoch) return;
      // `up` does not override a failing probe; the agent's `down` fails a passing one.
      if (outcome?.ok && plan.downError) {
        outcome = { ok: false, at: outcome.at, error: plan.downError, byAgent: true, ...(outcome.latencyMs !== undefined ? { latencyMs: outcome.latencyMs } : {}) };
      }
    }
    if (!outcome) return;
    const health = nextHealth(current.health, outcome, this.o.thresholds);
    if (healthChanged(current.health, health)) {
      await store.recordHealth(pool, server.id, server.epoch, health);
      if (health.status !== current.health.status) {
        this.o.logger?.info({ pool, server: server.id, health: health.status, error: health.lastError }, `server ${health.status}`);
      }
    }
    // Down by its agent's word alone, the server still answers its probe: its rooms are not lost.
    const down = downSince(health);
    if (down !== undefined && outcome.at - down >= this.o.lostAfterMs && store.countPlacements(pool, server.id) > 0) {
      const lost = await store.releaseServerPlacements(pool, server.id, server.epoch, 'server-unhealthy');
      if (lost.length > 0) this.o.onLost(lost);
    }
  }
}
