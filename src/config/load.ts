import { readFileSync } from 'node:fs';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { cidrProblems } from '../security/network-policy.js';
import type { RedisConnectionConfig } from '../store/redis/connection.js';
import { normalizeCoturnConfig } from './coturn-compat.js';
import { ConfigSchema, type Config } from './schema.js';

/** A configuration that cannot be used; `problems` names each bad value and where it came from. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;
type Tree = Record<string, unknown>;

/** Numeric LOG_LEVEL as the seed's "1 to ..." scale. */
const numericLevels: Record<string, string> = { '0': 'error', '1': 'info', '2': 'debug', '3': 'trace' };

/**
 * Environment overrides, by the names the seed projects use. Each maps to one config path; the
 * value is converted by the schema (so "3001" becomes 3001) and checked like the file's.
 */
const envPaths: [string, string[]][] = [
  ['APP_PORT', ['server', 'port']],
  ['HOST', ['server', 'host']],
  ['LOG_LEVEL', ['logLevel']],
  ['AUTH_TOKEN', ['auth', 'token']],
  ['REDIS_URL', ['store', 'redis', 'url']],
  ['REDIS_PREFIX', ['store', 'redis', 'prefix']],
  ['HEALTH_CHECK_INTERVAL', ['health', 'intervalMs']],
  ['HEALTH_CHECK_TIMEOUT', ['health', 'timeoutMs']],
  ['HEALTH_CHECK_PATH', ['health', 'path']],
  ['HEALTH_SUCCESS_THRESHOLD', ['health', 'successThreshold']],
  ['HEALTH_FAILURE_THRESHOLD', ['health', 'failureThreshold']],
  ['ROOM_LOST_AFTER', ['health', 'lostAfterMs']],
  ['CONSUMERS_PER_WORKER', ['rooms', 'consumersPerWorker']],
  ['ROOM_POLICY', ['rooms', 'policy']],
  ['TURN_SECRET', ['turn', 'secret']],
  ['TURN_CREDENTIALS_TOKEN', ['turn', 'credentialsToken']],
  ['TURN_CREDENTIALS_REQUIRE_AUTH', ['turn', 'credentialsRequireAuth']],
];


function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node = (node[key] = typeof next === 'object' && next !== null && !Array.isArray(next) ? next : {}) as Tree;
  }
  node[path[path.length - 1]!] = value;
}

export function readConfigFile(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`--config-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`--config-file ${file}: not valid YAML: ${(err as Error).message}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError([`--config-file ${file}: the top level must be a mapping`]);
  return doc as Tree;
}

/** Builds the effective configuration: defaults ← file ← environment. Throws ConfigError. */
export function loadConfig(options: { file?: string; env?: Env } = {}): Config {
  const env = options.env ?? process.env;
  const tree: Tree = options.file ? readConfigFile(options.file) : {};
  normalizeCoturnConfig(tree);
  const origin = new Map<string, string>();
  for (const [name, path] of envPaths) {
    let value = env[name];
    if (value === undefined || value === '') continue;
    if (name === 'LOG_LEVEL') value = numericLevels[value] ?? value.toLowerCase();
    setPath(tree, path, value);
    origin.set(`/${path.join('/')}`, `env ${name}`);
  }
  // seed 000's Kubernetes example names REDIS_HOST (and optionally REDIS_PORT / REDIS_PASSWORD).
  if (!env.REDIS_URL && env.REDIS_HOST) {
    const auth = env.REDIS_PASSWORD ? `:${encodeURIComponent(env.REDIS_PASSWORD)}@` : '';
    setPath(tree, ['store', 'redis', 'url'], `redis://${auth}${env.REDIS_HOST}:${env.REDIS_PORT ?? '6379'}`);
    origin.set('/store/redis/url', 'env REDIS_HOST');
  }
  const store = (tree.store ?? {}) as Tree;
  const redis = (store.redis ?? {}) as Tree;
  // Unset store type: Redis when a Redis is configured, memory otherwise.
  if (store.type === undefined && (redis.url || redis.sentinel || redis.cluster)) setPath(tree, ['store', 'type'], 'redis');

  // Value.Default fills `tree` in place: note what was set explicitly first.
  const timeoutSet = (tree.health as Tree | undefined)?.timeoutMs !== undefined;
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, tree));
  const problems = [...Value.Errors(ConfigSchema, value)]
    // An unknown key shows up as the `false` schema of additionalProperties failing at its path.
    .filter((e) => e.keyword !== 'additionalProperties')
    .map((e) => {
      const where = origin.get(e.instancePath) ?? (options.file ? `${options.file}` : 'config');
      const path = e.instancePath ? e.instancePath.slice(1).replaceAll('/', '.') : '(top level)';
      const params = e.params as { allowedValues?: unknown[] };
      let message = e.message;
      if (e.keyword === 'enum') message = `must be one of ${params.allowedValues?.join(', ')}`;
      if (e.keyword === 'boolean') return `${path} (${where}): unknown key; see config/switchboard.example.yaml for the known ones`;
      return `${path} (${where}): ${message}; got ${JSON.stringify(getPath(value, e.instancePath))}`;
    });
  if (problems.length === 0) {
    const config = value as Config;
    if (config.store.type === 'redis' && !config.store.redis.url && !config.store.redis.sentinel && !config.store.redis.cluster) {
      problems.push('store.type is redis but no Redis is configured: set REDIS_URL (or store.redis.url / sentinel / cluster)');
    }
    // An unset timeout follows a short interval down (seed users set only HEALTH_CHECK_INTERVAL).
    if (!timeoutSet) config.health.timeoutMs = Math.min(config.health.timeoutMs, Math.max(10, Math.floor(config.health.intervalMs / 2)));
    for (const problem of cidrProblems(config.security.allowedNetworks ?? [])) {
      problems.push(`security.allowedNetworks (${options.file ?? 'config'}): ${problem} (write networks like 10.0.0.0/8, fd00::/8 or 127.0.0.1/32)`);
    }
    if (config.health.timeoutMs >= config.health.intervalMs) {
      problems.push(`health.timeoutMs (${config.health.timeoutMs}) must be less than health.intervalMs (${config.health.intervalMs})`);
    }
    if (problems.length === 0) return config;
  }
  throw new ConfigError(problems);
}

function getPath(tree: unknown, pointer: string): unknown {
  let node = tree;
  for (const key of pointer.split('/').slice(1)) node = (node as Tree | undefined)?.[key];
  return node;
}

export function redisConnection(config: Config): RedisConnectionConfig {
  const r = config.store.redis;
  const auth = { ...(r.password !== undefined ? { password: r.password } : {}) };
  if (r.cluster) return { mode: 'cluster', nodes: r.cluster.nodes, ...auth };
  if (r.sentinel) return { mode: 'sentinel', name: r.sentinel.name, sentinels: r.sentinel.sentinels, ...auth, ...(r.db !== undefined ? { db: r.db } : {}) };
  return { mode: 'standalone', url: r.url! };
}
