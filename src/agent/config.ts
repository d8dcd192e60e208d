import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { ConfigError, readConfigFile } from '../config/load.js';
import { cidrProblems } from '../security/network-policy.js';
import { DEFAULT_THRESHOLDS, SEED_THRESHOLDS } from './reply.js';

/**
 * `switchboard agent`'s configuration: the `agent:` section of a YAML file (the same file may
 * configure `switchboard serve`, which ignores this section), overridden by command-line
 * options and threshold pairs. Every value is checked at start, one message per bad value.
 */

const Timing = {
  /** How often the source is read (default: agent.intervalMs). */
  intervalMs: Type.Optional(Type.Integer({ minimum: 100 })),
  /** How long one reading may take (default: agent.timeoutMs). */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 10 })),
  /** Consecutive failures before the source counts as failing (default: agent.failures). */
  failures: Type.Optional(Type.Integer({ minimum: 1 })),
};

const HttpUrl = Type.String({ pattern: '^https?://', maxLength: 2048 });
const CpuMode = Type.Enum(['loadavg', 'utilisation'], { default: 'loadavg' });

export const AgentConfigSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the agent-check port listens on.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 9707, description: 'Agent-check port (the seed: 9707).' }),
    /** Who may ask (xinetd's only_from): addresses and CIDR networks. Unset or empty: anyone. */
    peers: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 1024 })),
    /** Limits by metric name; the seed's six have defaults (cpu 90, the others 100). */
    thresholds: Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Number({ minimum: 0 }), { default: {} }),
    /** `up` replies: `headroom` (`up 37%`), `full` (`up 100%`, as the seed), `none` (plain `up`). */
    weight: Type.Enum(['headroom', 'full', 'none'], { default: 'headroom' }),
    /** Sent as `maxconn:N` when set. */
    maxconn: Type.Optional(Type.Integer({ minimum: 1 })),
    failures: Type.Integer({ minimum: 1, default: 3 }),
    intervalMs: Type.Integer({ minimum: 100, default: 2_000 }),
    timeoutMs: Type.Integer({ minimum: 10, default: 1_500 }),
    /** How long replies carry `ready` after start and after leaving drain or maint. */
    readyAnnounceMs: Type.Integer({ minimum: 0, default: 30_000 }),
    /** A file holding `ready`, `drain` or `maint`: the operator's admin state (read every second). */
    stateFile: Type.Optional(Type.String({ minLength: 1 })),
    /**
     * On SIGTERM the agent answers `drain` (and drains its registration), then keeps answering
     * `drain` at least this long so HAProxy's next agent check sees it (the seed checks every 5 s).
     */
    drainHoldMs: Type.Integer({ minimum: 0, default: 5_000 }),
    logLevel: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
    sources: Type.Object(
      {
        system: Type.Object(
          {
            enabled: Type.Boolean({ default: true }),
            cpuMode: CpuMode,
            /** Network interface for band-in/out; default: all but loopback. */
            interface: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            ...Timing,
          },
          { additionalProperties: false, default: {} },
        ),
        wcs: Type.Optional(Type.Object({ url: HttpUrl, ...Timing }, { additionalProperties: false })),
        srs: Type.Optional(Type.Object({ url: HttpUrl, cpuMode: CpuMode, ...Timing }, { additionalProperties: false })),
        json: Type.Optional(
          Type.Object(
            {
              url: HttpUrl,
              /** metric → JSON pointer (`/load/cpu`) or dotted path; unset: the top-level numbers. */
              fields: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.String({ maxLength: 512 }))),
              headers: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String())),
              ...Timing,
            },
            { additionalProperties: false },
          ),
        ),
        prometheus: Type.Optional(
          Type.Object(
            {
              url: HttpUrl,
              /** metric → Prometheus metric, with optional labels: `allocations: turn_total_allocations`. */
              metrics: Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.String({ minLength: 1, maxLength: 512 }), { minProperties: 1 }),
              ...Timing,
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * Self-registration with Switchboard (src/agent/registration.ts): passed on as its
     * RegistrationOptions; `url` is required, the rest is that file's to define.
     */
    switchboard: Type.Optional(
      Type.Object(
        {
          url: HttpUrl,
          token: Type.Optional(Type.String({ minLength: 1 })),
          pool: Type.Optional(Type.Enum(['rooms', 'turn'])),
          serverId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
          serviceUrl: Type.Optional(HttpUrl),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: false },
);

export type AgentConfig = Static<typeof AgentConfigSchema>;

/** Metric names any source may report, beyond the seed's six (usable as thresholds). */
export const EXTRA_METRICS = ['connections', 'viewers', 'consumers', 'allocations', 'rooms', 'sessions'] as const;

/** Names a threshold may have: the seed's, the extra ones, and those the configured sources map. */
export function knownMetrics(sources?: { json?: { fields?: Record<string, string> }; prometheus?: { metrics?: Record<string, string> } }): string[] {
  return [...SEED_THRESHOLDS, ...EXTRA_METRICS, ...Object.keys(sources?.json?.fields ?? {}), ...Object.keys(sources?.prometheus?.metrics ?? {})];
}

type Tree = Record<string, unknown>;

/** Deep merge of plain objects; `over` wins, arrays are replaced. */
export function mergeTree(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isTree(v) && isTree(b) ? mergeTree(b, v) : v;
  }
  return out;
}

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The effective agent configuration: defaults ← the file's `agent:` section ← `overrides`
 * (command line). Thresholds not given keep the seed's defaults. Throws ConfigError.
 */
export function loadAgentConfig(options: { file?: string; overrides?: Tree; cliThresholds?: string[] } = {}): AgentConfig {
  const doc = options.file ? readConfigFile(options.file) : {};
  const where = options.file ?? 'command line';
  const section = doc.agent ?? {};
  if (!isTree(section)) throw new ConfigError([`agent (${where}): must be a mapping`]);
  const tree = mergeTree(section, options.overrides ?? {});
  // Value.Default fills `tree` in place: note whether a timeout was given first.
  const timeoutSet = tree.timeoutMs !== undefined;
  const value = Value.Convert(AgentConfigSchema, Value.Default(AgentConfigSchema, tree));
  const problems = [...Value.Errors(AgentConfigSchema, value)]
    .filter((e) => e.keyword !== 'additionalProperties')
    .map((e) => {
      const path = `agent${e.instancePath.replaceAll('/', '.')}`;
      if (e.keyword === 'boolean') return `${path} (${where}): unknown key`;
      const params = e.params as { allowedValues?: unknown[] };
      const message = e.keyword === 'enum' ? `must be one of ${params.allowedValues?.join(', ')}` : e.message;
      return `${path} (${where}): ${message}; got ${JSON.stringify(getPath(value, e.instancePath))}`;
    });
  if (problems.length > 0) throw new ConfigError(problems);
  const config = value as AgentConfig;
  // An unset timeout follows a short interval down (as serve's health.timeoutMs does): giving
  // only `--interval 200` must not be refused for the default 1500 ms timeout.
  if (!timeoutSet && typeof config.intervalMs === 'number') config.timeoutMs = Math.min(config.timeoutMs, Math.max(10, Math.floor(config.intervalMs / 2)));
  for (const p of cidrProblems(config.peers ?? [])) problems.push(`agent.peers (${where}): ${p} (write addresses like 127.0.0.1 or networks like 10.0.0.0/8)`);
  const known = new Set(knownMetrics(config.sources));
  const fromCli = new Set(options.cliThresholds ?? []);
  for (const name of Object.keys(config.thresholds)) {
    if (known.has(name)) continue;
    const origin = fromCli.has(name) ? `threshold "${name}" (command line)` : `agent.thresholds.${name} (${where})`;
    problems.push(`${origin}: unknown metric; known: ${[...known].join(', ')}`);
  }
  const s = config.sources;
  for (const [name, src] of Object.entries({ system: s.system, wcs: s.wcs, srs: s.srs, json: s.json, prometheus: s.prometheus })) {
    if (!src) continue;
    const interval = src.intervalMs ?? config.intervalMs;
    const timeout = src.timeoutMs ?? config.timeoutMs;
    if (timeout >= interval) problems.push(`agent.sources.${name} (${where}): timeout ${timeout} ms must be less than the interval ${interval} ms`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  config.thresholds = { ...DEFAULT_THRESHOLDS, ...config.thresholds };
  return config;
}

function getPath(tree: unknown, pointer: string): unknown {
  let node = tree;
  for (const key of pointer.split('/').slice(1)) node = (node as Tree | undefined)?.[key];
  return node;
}
