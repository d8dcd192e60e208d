import { connect, isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AdminState, Server } from '../core/model.js';
import { FORBIDDEN_DESTINATION, type NetworkPolicy } from '../security/network-policy.js';
import type { ServerPatch } from '../store/store.js';
import { errorText } from './tcp.js';

/**
 * The agent-check client: Switchboard polls a media server's HAProxy-style agent (the seed's
 * `haproxy-agent-check.sh` under xinetd on port 9707, `switchboard agent`, or any agent written
 * for HAProxy's `agent-check`) and applies what it answers to health, admin state, weight and
 * capacity.
 *
 * The reply grammar is HAProxy 2.6's (configuration manual, `agent-check`): one line of words
 * separated by spaces, tabs or commas, in any order, case-insensitive, unknown words ignored:
 *
 * - `up` | `down` | `fail` | `stopped` — operational state; anything after a `#` is a description;
 * - `ready` | `drain` | `maint` — administrative state;
 * - `NN%` — weight as a percentage of the configured weight;
 * - `maxconn:N` — the server's connection limit (0: no limit).
 *
 * Applying it follows HAProxy where it can (see {@link planAgent}):
 * - failing to reach the agent is not an error: connectivity is the regular probe's business, and
 *   the agent's last word stays in force — a server the agent said `down` stays down until the
 *   agent says `up` (HAProxy: "only the agent may revert its own actions");
 * - `up` does not override a failing regular probe: both must pass;
 * - unlike HAProxy, where the agent and the CLI share one admin flag, the agent never changes an
 *   admin state an operator set: its `ready` ends only a `drain`/`maint` the agent itself set.
 */

export type AgentHealthWord = 'up' | 'down' | 'fail' | 'stopped';

export interface AgentReply {
  /** `up`, or `down` for any of `down` / `fail` / `stopped`. */
  health?: 'up' | 'down';
  /** The word the agent used for its health verdict. */
  status?: AgentHealthWord;
  admin?: 'ready' | 'drain' | 'maint';
  /** `NN%`: weight as a percentage of the configured weight. */
  weightPercent?: number;
  /** `maxconn:N` (0: no limit). */
  maxconn?: number;
  /** The text after `#`, trimmed (HAProxy shows it with a `down`/`fail`/`stopped` verdict). */
  description?: string;
}

/** What one agent check gave: a reply, or why there was none. */
export type AgentCheckResult = { ok: true; reply: AgentReply; raw: string; latencyMs: number } | { ok: false; error: string; latencyMs: number };

/** Where a server's agent listens, from its registration attributes. */
export interface AgentTarget {
  host: string;
  port: number;
  /** Sent verbatim on connect (HAProxy's `agent-send`). */
  send?: string;
}

/** Server attributes this feature reads and writes. */
export const AGENT_ATTR = {
  port: 'agentPort',
  host: 'agentHost',
  send: 'agentSend',
  /** The weight given at registration: `NN%` is relative to it. */
  configuredWeight: 'configuredWeight',
  /** The capacity given at registration: what `maxconn:0` restores in pools that take maxconn as capacity. */
  configuredCapacity: 'configuredCapacity',
  /** Non-empty while the agent's last health verdict is down: the error it is reported with. */
  down: 'agentDown',
  /** `drain` / `maint` while that admin state was set by the agent (and so may be ended by it); '' otherwise. */
  admin: 'agentAdmin',
  /** The agent's `maxconn:N`, in pools whose capacity is not counted in connections (rooms: consumers). */
  maxconn: 'maxconn',
} as const;

/** Largest weight HAProxy accepts; `NN%` above 100 is allowed up to it. */
export const MAX_WEIGHT = 256;
/** An agent line longer than this is cut (HAProxy reads one buffer). */
const MAX_REPLY_BYTES = 1024;

const HEALTH_WORDS: Record<string, AgentHealthWord> = { up: 'up', down: 'down', fail: 'fail', stopped: 'stopped' };
const ADMIN_WORDS: Record<string, 'ready' | 'drain' | 'maint'> = { ready: 'ready', drain: 'drain', maint: 'maint' };

/**
 * Parses an agent's reply (pure). Only the first line counts; a word later in the line replaces
 * an earlier one of the same kind; words that mean nothing here (bare numbers, `100.5%`,
 * `maxconn:x`, anything else) are ignored, as HAProxy ignores them.
 */
export function parseAgentReply(text: string): AgentReply {
  const line = text.split(/\r?\n|\r/, 1)[0] ?? '';
  const reply: AgentReply = {};
  const sharp = line.indexOf('#');
  const words = sharp === -1 ? line : line.slice(0, sharp);
  if (sharp !== -1) {
    const description = line.slice(sharp + 1).trim();
    if (description) reply.description = description;
  }
  for (const raw of words.split(/[ \t,]+/)) {
    if (!raw) continue;
    const word = raw.toLowerCase();
    const health = HEALTH_WORDS[word];
    if (health) {
      reply.status = health;
      reply.health = health === 'up' ? 'up' : 'down';
      continue;
    }
    const admin = ADMIN_WORDS[word];
    if (admin) {
      reply.admin = admin;
      continue;
    }
    const pct = /^(\d{1,6})%$/.exec(word);
    if (pct) {
      reply.weightPercent = Number(pct[1]);
      continue;
    }
    const maxconn = /^maxconn:(\d{1,9})$/.exec(word);
    if (maxconn) reply.maxconn = Number(maxconn[1]);
  }
  return reply;
}

/** The health error an agent verdict of down is recorded with (`lastError`). */
export function agentDownText(reply: AgentReply): string {
  return `agent: ${reply.status ?? 'down'}${reply.description ? ` (${reply.description})` : ''}`;
}

const unbracket = (host: string) => (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);

/** Where the server's agent is, or undefined if it registered none. */
export function agentTarget(server: Pick<Server, 'serviceUrl' | 'attributes'>): AgentTarget | undefined {
  const port = server.attributes[AGENT_ATTR.port];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  let host = server.attributes[AGENT_ATTR.host];
  if (typeof host !== 'string' || !host) {
    try {
      host = new URL(server.serviceUrl).hostname;
    } catch {
      return undefined;
    }
  }
  if (!host) return undefined;
  const send = server.attributes[AGENT_ATTR.send];
  return { host: unbracket(host), port, ...(typeof send === 'string' && send ? { send } : {}) };
}

/**
 * The registration attributes of a server with an agent: where it answers, and the weight and
 * capacity `NN%` and `maxconn:0` are relative to. Empty without `agentPort`.
 */
export function agentAttributes(
  input: { agentPort?: number | undefined; agentHost?: string | undefined; agentSend?: string | undefined },
  weight: number,
  capacity: number,
): Record<string, number | string> {
  if (input.agentPort === undefined) return {};
  return {
    [AGENT_ATTR.port]: input.agentPort,
    ...(input.agentHost ? { [AGENT_ATTR.host]: unbracket(input.agentHost) } : {}),
    ...(input.agentSend ? { [AGENT_ATTR.send]: input.agentSend } : {}),
    [AGENT_ATTR.configuredWeight]: weight,
    [AGENT_ATTR.configuredCapacity]: capacity,
  };
}


/**
 * One agent check: connect (through the SSRF guard), send `agent-send` if any, read until a
 * newline or until the agent closes, all within `timeoutMs`, and parse the line.
 */
export function queryAgent(target: AgentTarget, timeoutMs: number, policy?: NetworkPolicy): Promise<AgentCheckResult> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  if (policy && isIP(target.host)) {
    const reason = policy.refusal(target.host);
    if (reason) return Promise.resolve({ ok: false, error: `${FORBIDDEN_DESTINATION}: ${reason}`, latencyMs: 0 });
  }
  return new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port, ...(policy ? { lookup: policy.lookup } : {}) });
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: AgentCheckResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const answer = () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const line = raw.split(/\r?\n|\r/, 1)[0]!;
      if (!line.trim()) return finish({ ok: false, error: 'agent sent an empty reply', latencyMs: elapsed() });
      finish({ ok: true, reply: parseAgentReply(line), raw: line, latencyMs: elapsed() });
    };
    const timer = setTimeout(() => finish({ ok: false, error: `agent: timeout after ${timeoutMs} ms`, latencyMs: elapsed() }), timeoutMs);
    socket.once('connect', () => {
      if (target.send) socket.write(target.send);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_REPLY_BYTES || chunk.includes(0x0a) || chunk.includes(0x0d)) answer();
    });
    socket.once('end', answer);
    // A reset after the line (an agent closing before reading agent-send) still counts the line.
    socket.once('error', (err: NodeJS.ErrnoException) => (size > 0 ? answer() : finish({ ok: false, error: `agent: ${errorText(err)}`, latencyMs: elapsed() })));
    socket.once('close', () => (size > 0 ? answer() : finish({ ok: false, error: 'agent: connection closed without a reply', latencyMs: elapsed() })));
  });
}

/** How a pool takes `maxconn:N`: as its capacity (units are connections), or as an attribute only. */
export type MaxconnMode = 'capacity' | 'attribute';

/** What to write for one agent result; only what differs from the server as it is. */
export interface AgentPlan {
  /** The agent's health verdict in force: the error a down server is reported with, or undefined (no objection). */
  downError?: string;
  admin?: AdminState;
  patch?: ServerPatch;
}

const str = (v: unknown) => (typeof v === 'string' ? v : '');

/**
 * Decides what an agent result changes (pure). `result` undefined or failed: nothing changes, and
 * a down verdict the agent gave earlier stays in force.
 *
 * - Health: `down`/`fail`/`stopped` → down (recorded in `attributes.agentDown`, so every instance
 *   holding the probe lease keeps it); `up` clears it; no word keeps the last verdict.
 * - Admin: `drain`/`maint` apply to an active server, or over a state the agent set itself (kept in
 *   `attributes.agentAdmin`); `ready` ends only a state the agent set. A state an operator set is
 *   never changed. If the admin state differs from what the agent set, an operator changed it
 *   since, and the agent no longer owns it.
 * - `NN%` → weight = round(configuredWeight × NN / 100), at most 256.
 * - `maxconn:N` → capacity (mode `capacity`; 0 restores the registered capacity) or
 *   `attributes.maxconn` (mode `attribute`).
 */
export function planAgent(server: Pick<Server, 'adminState' | 'weight' | 'capacity' | 'attributes'>, result: AgentCheckResult | undefined, maxconnMode: MaxconnMode): AgentPlan {
  const attrs = server.attributes;
  const attributes: Record<string, string | number | boolean> = {};
  const patch: ServerPatch = {};
  const plan: AgentPlan = {};
  const reply = result?.ok ? result.reply : undefined;

  // Health.
  let down = str(attrs[AGENT_ATTR.down]);
  if (reply?.health === 'down') down = agentDownText(reply);
  else if (reply?.health === 'up') down = '';
  if (down !== str(attrs[AGENT_ATTR.down])) attributes[AGENT_ATTR.down] = down;
  if (down) plan.downError = down;

  // Admin state.
  let owned = str(attrs[AGENT_ATTR.admin]);
  if (owned && owned !== server.adminState) owned = ''; // an operator changed it since
  if (reply?.admin) {
    const want: AdminState = reply.admin === 'ready' ? 'active' : reply.admin;
    if (want === 'active') {
      if (owned) {
        plan.admin = 'active';
        owned = '';
      }
    } else if (server.adminState !== want && (server.adminState === 'active' || owned)) {
      plan.admin = want;
      owned = want;
    }
  }
  if (owned !== str(attrs[AGENT_ATTR.admin])) attributes[AGENT_ATTR.admin] = owned;

  // Weight.
  if (reply?.weightPercent !== undefined) {
    const configured = attrs[AGENT_ATTR.configuredWeight];
    const base = typeof configured === 'number' ? configured : 100;
    const weight = Math.min(MAX_WEIGHT, Math.round((base * reply.weightPercent) / 100));
    if (weight !== server.weight) patch.weight = weight;
  }

  // maxconn.
  if (reply?.maxconn !== undefined) {
    if (maxconnMode === 'capacity') {
      const configured = attrs[AGENT_ATTR.configuredCapacity];
      const capacity = reply.maxconn === 0 ? (typeof configured === 'number' ? configured : server.capacity) : reply.maxconn;
      if (capacity !== server.capacity) patch.capacity = capacity;
    } else if (attrs[AGENT_ATTR.maxconn] !== reply.maxconn) {
      attributes[AGENT_ATTR.maxconn] = reply.maxconn;
    }
  }

  if (Object.keys(attributes).length > 0) patch.attributes = attributes;
  if (Object.keys(patch).length > 0) plan.patch = patch;
  return plan;
}
