import type { BucketSpec } from '../core/token-bucket.js';
import type { PoolBalancer } from './balancer.js';
import { headerValue, type RequestHead } from './http1/head.js';
import type { RouteConfig } from './schema.js';

/** What a request is sent to: a pool's balancer, or the server holding a room. */
export interface Route {
  name: string;
  pool: PoolBalancer | undefined;
  /** Room routing: where the roomId is read. */
  room: { pathSegment?: number | undefined; query?: string | undefined } | undefined;
  rateLimit: BucketSpec | undefined;
  /** The implicit seed-004 rule: when its pool has no backends at all, the default pool serves. */
  fallback: boolean;
}

/** `path` is the request's path (requestPath), made once per request when a rule reads it. */
type Matcher = (head: RequestHead, path: string) => boolean;

/** Seed 004's rule: `Upgrade: websocket` or a `Sec-WebSocket-Key` header. */
export function isWebSocket(head: RequestHead): boolean {
  return head.wsKey || (head.upgrade !== undefined && head.upgrade.toLowerCase() === 'websocket');
}

/**
 * The host a request names, lower-case, without its port. An absolute-form target's authority
 * wins over the Host header (RFC 9112 3.2.2: a server must ignore Host then), so a request cannot
 * be routed by one name while naming another to a backend that reads the target.
 */
export function requestHost(head: RequestHead): string | undefined {
  let h = head.host;
  const t = head.target;
  if (t.charCodeAt(0) !== 0x2f) {
    const scheme = t.indexOf('://');
    if (scheme !== -1) {
      const end = t.slice(scheme + 3).search(/[/?#]/);
      const authority = end === -1 ? t.slice(scheme + 3) : t.slice(scheme + 3, scheme + 3 + end);
      h = authority.slice(authority.lastIndexOf('@') + 1);
    }
  }
  if (h === undefined) return undefined;
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1).toLowerCase();
  const colon = h.lastIndexOf(':');
  return (colon === -1 ? h : h.slice(0, colon)).toLowerCase();
}

/** The path of a request target (origin-form or absolute-form), without the query. */
export function requestPath(target: string): string {
  let start = 0;
  if (target.charCodeAt(0) !== 0x2f) {
    // absolute-form (`http://host/path`): the path starts at the first `/` after the authority.
    const scheme = target.indexOf('://');
    start = scheme === -1 ? 0 : target.indexOf('/', scheme + 3);
    if (start === -1) return '/';
  }
  const q = target.indexOf('?', start);
  return q === -1 ? target.slice(start) : target.slice(start, q);
}

/** A query parameter's decoded value, or undefined (also for malformed percent-encoding). */
export function queryParam(target: string, name: string): string | undefined {
  const q = target.indexOf('?');
  if (q === -1) return undefined;
  const end = target.indexOf('#', q);
  for (const part of target.slice(q + 1, end === -1 ? undefined : end).split('&')) {
    const eq = part.indexOf('=');
    const k = eq === -1 ? part : part.slice(0, eq);
    if (k !== name) continue;
    try {
      return decodeURIComponent((eq === -1 ? '' : part.slice(eq + 1)).replaceAll('+', ' '));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The n-th (1-based) non-empty segment of a path, decoded; undefined when absent or malformed. */
export function pathSegment(path: string, n: number): string | undefined {
  const parts = path.split('/').filter((p) => p !== '');
  const raw = parts[n - 1];
  if (raw === undefined) return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

function compileMatch(m: RouteConfig['match']): Matcher {
  const checks: Matcher[] = [];
  if (m.host) {
    const exact = new Set(m.host.filter((h) => !h.startsWith('*.')).map((h) => h.toLowerCase()));
    const suffixes = m.host.filter((h) => h.startsWith('*.')).map((h) => h.slice(1).toLowerCase());
    checks.push((head) => {
      const h = requestHost(head);
      return h !== undefined && (exact.has(h) || suffixes.some((s) => h.endsWith(s)));
    });
  }
  if (m.pathPrefix !== undefined) {
    const prefix = m.pathPrefix;
    checks.push((_head, path) => path.startsWith(prefix));
  }
  if (m.header) {
    const name = m.header.name.toLowerCase();
    const value = m.header.value?.toLowerCase();
    checks.push((head) => {
      const v = headerValue(head, name);
      return v !== undefined && (value === undefined || v.toLowerCase() === value);
    });
  }
  if (m.websocket !== undefined) {
    const want = m.websocket;
    checks.push((head) => isWebSocket(head) === want);
  }
  return (head, path) => checks.every((c) => c(head, path));
}

/**
 * Routing (HAProxy's ACLs and `use_backend`): rules in order, first match wins, else the default
 * pool. Without configured rules, seed 004's rule applies: WebSockets go to the `media` pool when
 * it has backends, everything else (and WebSockets when it has none) to the default pool.
 */
export class Router {
  private readonly rules: { match: Matcher; route: Route }[];
  private readonly fallbackRoute: Route;
  /** Whether a rule reads the path (else no path string is made per request). */
  private readonly needsPath: boolean;

  constructor(routes: readonly RouteConfig[], defaultPool: PoolBalancer | undefined, pools: ReadonlyMap<string, PoolBalancer>) {
    this.fallbackRoute = { name: 'default', pool: defaultPool, room: undefined, rateLimit: undefined, fallback: false };
    this.rules = routes.map((r, i) => ({
      match: compileMatch(r.match),
      route: {
        name: r.name ?? `route-${i + 1}`,
        // A rule naming neither a pool nor a room (e.g. only a rate limit) serves from the default pool.
        pool: r.pool !== undefined ? pools.get(r.pool) : r.room === undefined ? defaultPool : undefined,
        room: r.room,
        rateLimit: r.rateLimit ? { rate: r.rateLimit.rate, burst: r.rateLimit.burst ?? Math.max(1, Math.ceil(r.rateLimit.rate)) } : undefined,
        fallback: false,
      },
    }));
    this.needsPath = routes.some((r) => r.match.pathPrefix !== undefined);
    const media = pools.get('media');
    if (routes.length === 0 && media && media !== defaultPool) {
      this.rules.push({ match: isWebSocket, route: { name: 'websocket', pool: media, room: undefined, rateLimit: undefined, fallback: true } });
    }
  }

  route(head: RequestHead): Route {
    const path = this.needsPath ? requestPath(head.target) : '';
    for (const r of this.rules) {
      if (!r.match(head, path)) continue;
      if (r.route.fallback && r.route.pool!.upstreams.size === 0) return this.fallbackRoute;
      return r.route;
    }
    return this.fallbackRoute;
  }

  /** The roomId a room route reads from the request, if present. */
  static roomId(route: Route, target: string, path: string): string | undefined {
    const spec = route.room!;
    if (spec.query !== undefined) {
      const v = queryParam(target, spec.query);
      if (v !== undefined && v !== '') return v;
    }
    if (spec.pathSegment !== undefined) return pathSegment(path, spec.pathSegment);
    return undefined;
  }
}
