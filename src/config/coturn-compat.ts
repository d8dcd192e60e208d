/**
 * The coturn load balancer's configuration, accepted unchanged (seed 001). Its YAML layout has
 * top-level `healthCheck`, `loadBalancer`, `webApi` and `turn.addressMapping`; its README lists
 * flat names (`intervalSeconds`, `turnAddressMapping`, `prometheusEndpoint`, ...). Both are
 * rewritten here into Switchboard's `turn` section before validation.
 */
type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);
const child = (t: Tree, key: string): Tree => (isTree(t[key]) ? (t[key] as Tree) : (t[key] = {}) as Tree);

const flatHealth = ['intervalSeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold'];
const flatBalancer = ['algorithm', 'intervalMinutes', 'durationMinutes'];
const flatPrometheus: Record<string, string> = {
  prometheusEndpoint: 'endpoint',
  prometheusPort: 'port',
  prometheusQuery: 'query',
  prometehusQuery: 'query', // the seed README's spelling
};
const coturnTopLevel = ['healthCheck', 'loadBalancer', 'webApi', 'turnAddressMapping', 'port', ...flatHealth, ...flatBalancer, ...Object.keys(flatPrometheus)];

/** Whether a config tree uses any of the coturn balancer's names. */
export function usesCoturnNames(tree: Tree): boolean {
  return coturnTopLevel.some((k) => k in tree && k !== 'port') || (isTree(tree.turn) && 'addressMapping' in tree.turn);
}

export function normalizeCoturnConfig(tree: Tree): void {
  // Flat names may sit at the top level of a coturn balancer file or in the `turn` section.
  const coturnFile = usesCoturnNames(tree);
  const turn = child(tree, 'turn');
  for (const key of coturnTopLevel) {
    if (key in tree && key !== 'webApi' && (key !== 'port' || coturnFile)) {
      if (!(key in turn)) turn[key] = tree[key];
      delete tree[key];
    }
  }
  if (isTree(tree.webApi)) {
    const server = child(tree, 'server');
    if (server.host === undefined && tree.webApi.host !== undefined) server.host = tree.webApi.host;
    if (server.port === undefined && tree.webApi.port !== undefined) server.port = tree.webApi.port;
    delete tree.webApi; // `threads` has no meaning here: Node serves on one event loop
  }
  if (tree.logLevel === 'warning') tree.logLevel = 'warn';

  const health = isTree(turn.healthCheck) ? turn.healthCheck : {};
  const balancer = isTree(turn.loadBalancer) ? turn.loadBalancer : {};
  for (const key of flatHealth) {
    if (key in turn) {
      health[key] ??= turn[key];
      delete turn[key];
    }
  }
  for (const key of flatBalancer) {
    if (key in turn) {
      balancer[key] ??= turn[key];
      delete turn[key];
    }
  }
  for (const [flat, key] of Object.entries(flatPrometheus)) {
    if (flat in turn) {
      const prometheus = child(balancer, 'prometheus');
      prometheus[key] ??= turn[flat];
      delete turn[flat];
    }
  }
  if (Object.keys(health).length > 0) turn.healthCheck = health;
  if (Object.keys(balancer).length > 0) turn.loadBalancer = balancer;

  for (const key of ['addressMapping', 'turnAddressMapping']) {
    const mapping = turn[key];
    if (mapping === undefined) continue;
    delete turn[key];
    if (!isTree(mapping)) {
      turn.servers = mapping; // let validation name the problem
      continue;
    }
    const servers = Array.isArray(turn.servers) ? turn.servers : (turn.servers = []);
    for (const [host, privateAddress] of Object.entries(mapping)) servers.push({ host, privateAddress });
  }
}
