import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { cidrProblems } from '../security/network-policy.js';
import type { RedisConnectionConfig } from '../store/redis/connection.js';
import { normalizeCoturnConfig } from './coturn-compat.js';
import { BackendEntrySchema } from '../proxy/schema.js';
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
  // SRS's proxy (seed 003): the system API and the media listeners.
  ['PROXY_SYSTEM_API', ['origins', 'systemApiPort']],
  ['PROXY_RTMP_SERVER', ['origins', 'rtmpPort']],
  ['PROXY_HTTP_SERVER', ['origins', 'httpPort']],
  ['PROXY_HTTP_API', ['origins', 'httpApiPort']],
  ['PROXY_WEBRTC_SERVER', ['origins', 'webrtcPort']],
  ['PROXY_SRT_SERVER', ['origins', 'srtPort']],
  ['CANDIDATE', ['origins', 'webrtcCandidate']],
  // seed 002: the proxy listener and its worker processes.
  ['PORT', ['proxy', 'port']],
  ['WORKER_COUNT', ['proxy', 'workers']],
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
export function loadConfig(options: { file?: string; env?: Env; backendsFile?: string; cwd?: string } = {}): Config {
  const env = options.env ?? process.env;
  const tree: Tree = options.file ? readConfigFile(options.file) : {};
  normalizeCoturnConfig(tree);
  const proxySection = tree.proxy !== undefined;
  const backendProblems = mergeBackendsFile(tree, options.backendsFile ?? env.BACKENDS_FILE, options.cwd ?? process.cwd());
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
  const early = proxyLoadBalancer(env, tree, origin);
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
  problems.unshift(...early, ...backendProblems);
  if (problems.length === 0) {
    const config = value as Config;
    // The proxy runs when it has something to do: backends, a proxy section, or PORT (seed 002).
    config.proxy.enabled ??= proxySection || config.proxy.backends.length > 0 || (env.PORT !== undefined && env.PORT !== '');
    if (config.proxy.workers === 0) config.proxy.workers = availableParallelism();
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

/**
 * Seed 002's `config/backends.json` (`{"backends":[{"host","port"}, ...]}`): read from `file`
 * (`--backends`, env BACKENDS_FILE) or, when present, from `config/backends.json` in the working
 * directory; its entries come before the YAML's `proxy.backends`.
 */
function mergeBackendsFile(tree: Tree, file: string | undefined, cwd: string): string[] {
  const path = file ?? resolve(cwd, 'config/backends.json');
  if (file === undefined && !existsSync(path)) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return [`${path}: ${e.code ? `cannot read it (${e.code})` : `not valid JSON: ${e.message}`}`];
  }
  const list = (doc as { backends?: unknown } | null)?.backends;
  if (!Array.isArray(list)) return [`${path}: expected {"backends":[{"host":"127.0.0.1","port":3000}, ...]}`];
  const problems: string[] = [];
  list.forEach((entry, i) => {
    for (const e of Value.Errors(BackendEntrySchema, entry)) {
      problems.push(`backends[${i}]${e.instancePath.replaceAll('/', '.')} (${path}): ${e.keyword === 'additionalProperties' ? 'unknown key' : e.message}; got ${JSON.stringify(entry)}`);
    }
  });
  const proxy = (tree.proxy ??= {}) as Tree;
  proxy.backends = [...list, ...((Array.isArray(proxy.backends) ? proxy.backends : []) as unknown[])];
  return problems;
}

/**
 * SRS's proxy names (seed 003): `PROXY_LOAD_BALANCER_TYPE=memory|redis` picks the store;
 * with `redis`, `PROXY_REDIS_HOST/PORT/PASSWORD/DB` (defaults 127.0.0.1, 6379, none, 0) make the
 * Redis URL unless REDIS_URL is set — the same Redis an instance configured with REDIS_URL uses.
 * `memory` forces the memory store. Returns problems with these names.
 */
function proxyLoadBalancer(env: Env, tree: Tree, origin: Map<string, string>): string[] {
  const type = env.PROXY_LOAD_BALANCER_TYPE;
  if (type === undefined || type === '') return [];
  // An unknown value fails the schema's enum check, named after this variable.
  setPath(tree, ['store', 'type'], type);
  origin.set('/store/type', 'env PROXY_LOAD_BALANCER_TYPE');
  if (type !== 'redis' || env.REDIS_URL) return [];
  const given = ['PROXY_REDIS_HOST', 'PROXY_REDIS_PORT', 'PROXY_REDIS_PASSWORD', 'PROXY_REDIS_DB'].some((n) => env[n]);
  const redis = ((tree.store as Tree).redis ?? {}) as Tree;
  // A Redis configured otherwise (file, REDIS_HOST) stays unless a PROXY_REDIS_* name is set.
  if (!given && (redis.url || redis.sentinel || redis.cluster)) return [];
  const problems: string[] = [];
  const port = env.PROXY_REDIS_PORT || '6379';
  const db = env.PROXY_REDIS_DB || '0';
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) problems.push(`store.redis.url (env PROXY_REDIS_PORT): must be a port 1-65535; got ${JSON.stringify(port)}`);
  if (!/^\d{1,4}$/.test(db)) problems.push(`store.redis.db (env PROXY_REDIS_DB): must be a database number; got ${JSON.stringify(db)}`);
  let host = env.PROXY_REDIS_HOST || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) problems.push(`store.redis.url (env PROXY_REDIS_HOST): must be a host name or address; got ${JSON.stringify(host)}`);
  if (host.includes(':')) host = `[${host}]`;
  const auth = env.PROXY_REDIS_PASSWORD ? `:${encodeURIComponent(env.PROXY_REDIS_PASSWORD)}@` : '';
  setPath(tree, ['store', 'redis', 'url'], `redis://${auth}${host}:${port}/${db}`);
  origin.set('/store/redis/url', 'env PROXY_REDIS_HOST');
  return problems;
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
