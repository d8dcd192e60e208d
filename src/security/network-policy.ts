import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { AppError } from '../errors.js';

/**
 * Where Switchboard may open connections to (server-side request forgery guard).
 *
 * Media servers, TURN servers and webhook receivers name their own addresses; Switchboard then
 * connects to them (room creation, health probes, room-lost webhooks). Without a guard, anyone who
 * may register could make Switchboard call a cloud metadata service or scan internal ports.
 *
 * - Always refused: link-local and cloud metadata addresses, "this network", multicast and
 *   reserved ranges ({@link REFUSED_NETWORKS}), in any spelling (IPv4-mapped IPv6 included:
 *   `net.BlockList` matches `::ffff:169.254.169.254` against IPv4 rules).
 * - Loopback and private ranges are allowed by default: media servers live there.
 * - With `security.allowedNetworks` set, only destinations inside those networks are allowed
 *   (and the always-refused ranges stay refused).
 *
 * Checked twice: when an address is registered ({@link NetworkPolicy.assertAllowedUrl}: IP
 * literals directly, names by resolving them, refused if any address is), and when connecting
 * ({@link NetworkPolicy.lookup}, {@link NetworkPolicy.connector}): a name that resolves somewhere
 * else later (DNS rebinding) fails to connect.
 */
export const REFUSED_NETWORKS: readonly string[] = [
  '0.0.0.0/8', // "this network"; 0.0.0.0 reaches the local host on Linux
  '169.254.0.0/16', // IPv4 link-local, cloud metadata (169.254.169.254)
  '100.100.100.200/32', // Alibaba Cloud metadata
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
  '::/128', // unspecified
  'fe80::/10', // IPv6 link-local
  'fd00:ec2::254/128', // AWS metadata over IPv6
  'ff00::/8', // IPv6 multicast
];

/** Error code of a refused destination (on errors thrown at registration and at connect). */
export const FORBIDDEN_DESTINATION = 'ERR_FORBIDDEN_DESTINATION';

/** A connection or registration refused by the policy. `code` is {@link FORBIDDEN_DESTINATION}. */
export class ForbiddenDestinationError extends Error {
  readonly code = FORBIDDEN_DESTINATION;
  constructor(
    readonly host: string,
    readonly address: string,
    readonly reason: string,
  ) {
    super(host === address ? `destination ${address} is not allowed: ${reason}` : `destination ${host} (${address}) is not allowed: ${reason}`);
    this.name = 'ForbiddenDestinationError';
  }
}

type Family = 'ipv4' | 'ipv6';

interface Cidr {
  address: string;
  prefix: number;
  family: Family;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128). Throws with a reason. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const address = unbracket((slash < 0 ? text : text.slice(0, slash)).trim());
  const v = isIP(address);
  if (v === 0) throw new Error(`"${text}" is not a CIDR network: "${address}" is not an IP address`);
  const family: Family = v === 4 ? 'ipv4' : 'ipv6';
  const max = v === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1).trim();
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw new Error(`"${text}" is not a CIDR network: the prefix length must be 0 to ${max}`);
  return { address, prefix: Number(prefixText), family };
}

/** One message per entry that is not a CIDR network (for configuration checks). */
export function cidrProblems(list: readonly string[]): string[] {
  const problems: string[] = [];
  for (const entry of list) {
    try {
      parseCidr(entry);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return problems;
}

function blockList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const n of networks) {
    const { address, prefix, family } = parseCidr(n);
    list.addSubnet(address, prefix, family);
  }
  return list;
}

const CACHE_MS = 10_000;
const CACHE_ENTRIES = 4096;

const unbracket = (host: string) => (host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);

/** The dns.lookup signature the policy resolves names with (injectable for tests). */
export type Resolver = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

export interface NetworkPolicyOptions {
  /** CIDR networks; when set, only destinations inside them are allowed. */
  allowedNetworks?: readonly string[];
  /** Name resolution (default: dns.lookup, as net.connect uses). */
  resolve?: Resolver;
  /** How long a registration-time name lookup may take before it is given up on (ms). */
  resolveTimeoutMs?: number;
}

/** The destination guard; one per process (see the module comment). */
export class NetworkPolicy {
  private readonly refused = blockList(REFUSED_NETWORKS);
  private readonly allowed: BlockList | undefined;
  private readonly resolve: Resolver;
  private readonly resolveTimeoutMs: number;
  /** Registration-time verdicts on names, briefly kept. */
  private readonly cache = new Map<string, { expires: number; refused: { address: string; reason: string } | undefined }>();
  readonly allowedNetworks: readonly string[] | undefined;

  constructor(options: NetworkPolicyOptions = {}) {
    this.allowedNetworks = options.allowedNetworks;
    this.allowed = options.allowedNetworks ? blockList(options.allowedNetworks) : undefined;
    this.resolve = options.resolve ?? (dnsLookup as unknown as Resolver);
    this.resolveTimeoutMs = options.resolveTimeoutMs ?? 2_000;
  }

  /** From the `security` config section. */
  static fromConfig(security: { allowedNetworks?: string[] } | undefined): NetworkPolicy {
    return new NetworkPolicy(security?.allowedNetworks ? { allowedNetworks: security.allowedNetworks } : {});
  }

  /** Why an IP address is refused, or undefined when it is allowed. Not an IP address → refused. */
  refusal(ip: string): string | undefined {
    const address = unbracket(ip);
    const v = isIP(address);
    if (v === 0) return 'not an IP address';
    const family: Family = v === 4 ? 'ipv4' : 'ipv6';
    if (this.refused.check(address, family)) return 'link-local, metadata, multicast or reserved address';
    // An IPv4 address carried inside an IPv6 one (IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96,
    // 6to4 2002::/16) reaches that IPv4 address: it is judged as that address too.
    const embedded = family === 'ipv6' ? embeddedIpv4(address) : undefined;
    if (embedded && this.refused.check(embedded, 'ipv4')) return 'link-local, metadata, multicast or reserved address (embedded in IPv6)';
    if (this.allowed && !this.allowed.check(address, family)) return 'outside security.allowedNetworks';
    return undefined;
  }

  isAllowed(ip: string): boolean {
    return this.refusal(ip) === undefined;
  }

  /**
   * Why a host (IP literal or name) is refused, or undefined. A name is resolved and refused if
   * any of its addresses is. A name that does not resolve (or not within resolveTimeoutMs) is let
   * through: it cannot be connected to now, and the connect-time guard checks it when it does.
   */
  async hostRefusal(host: string): Promise<{ address: string; reason: string } | undefined> {
    const h = unbracket(host);
    if (isIP(h)) {
      const reason = this.refusal(h);
      return reason ? { address: h, reason } : undefined;
    }
    const now = Date.now();
    const cached = this.cache.get(h);
    if (cached && cached.expires > now) return cached.refused;
    const addresses = await this.resolveAll(h);
    let refused: { address: string; reason: string } | undefined;
    for (const a of addresses) {
      const reason = this.refusal(a.address);
      if (reason) {
        refused = { address: a.address, reason };
        break;
      }
    }
    // Room requests may name the same webhook host thousands of times a second: one lookup per
    // name per CACHE_MS (the connect-time guard still checks every connection).
    if (addresses.length > 0) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
      this.cache.set(h, { expires: now + CACHE_MS, refused });
    }
    return refused;
  }

  /** Throws a 400 `forbidden_destination` naming `field` when the host is refused. */
  async assertAllowedHost(host: string, field: string): Promise<void> {
    const refused = await this.hostRefusal(host);
    if (refused) throw forbidden(field, host, refused.address, refused.reason);
  }

  /** Throws a 400 `forbidden_destination` naming `field` when the URL's host is refused. */
  async assertAllowedUrl(url: string, field: string): Promise<void> {
    let hostname: string;
    try {
      hostname = new URL(url).hostname;
    } catch {
      throw new AppError(400, 'bad_request', `${field} is not a URL`, { field, reason: 'is not a URL' });
    }
    await this.assertAllowedHost(hostname, field);
  }

  /**
   * A `lookup` for net.connect / tls.connect / undici's `connect` options: resolves like
   * dns.lookup and fails with a {@link ForbiddenDestinationError} when any address is refused.
   * (net.connect skips lookup for IP literals: {@link connector} checks those.)
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const opts = (typeof options === 'number' ? { family: options } : (options ?? {})) as LookupOneOptions | LookupAllOptions;
    const all = opts.all === true;
    this.resolve(hostname, { ...opts, all: true }, (err, addresses) => {
      if (err) return callback(err, all ? [] : '', 0);
      if (!addresses || addresses.length === 0) {
        const e = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }) as NodeJS.ErrnoException;
        return callback(e, all ? [] : '', 0);
      }
      for (const a of addresses) {
        const reason = this.refusal(a.address);
        if (reason) return callback(new ForbiddenDestinationError(hostname, a.address, reason) as NodeJS.ErrnoException, all ? [] : '', 0);
      }
      if (all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };

  /** Throws a ForbiddenDestinationError when `host` is an IP literal that is refused (names: no-op). */
  assertAllowedLiteral(host: string): void {
    const h = unbracket(host);
    if (!isIP(h)) return;
    const reason = this.refusal(h);
    if (reason) throw new ForbiddenDestinationError(h, h, reason);
  }

  /**
   * An undici connector (the `connect` option of a Pool, Client or Agent) that refuses IP
   * literals the policy refuses and resolves names through {@link lookup}.
   */
  connector(options: buildConnector.BuildOptions = {}): buildConnector.connector {
    const base = buildConnector({ ...options, lookup: this.lookup } as buildConnector.BuildOptions);
    return (opts, callback) => {
      const host = unbracket(opts.hostname);
      if (isIP(host)) {
        const reason = this.refusal(host);
        if (reason) {
          callback(new ForbiddenDestinationError(host, host, reason), null);
          return;
        }
      }
      base(opts, callback);
    };
  }

  /** An undici Agent whose connections go through {@link connector}. */
  agent(options: Agent.Options & { connectTimeoutMs?: number } = {}): Dispatcher {
    const { connectTimeoutMs, ...rest } = options;
    return new Agent({ ...rest, connect: this.connector(connectTimeoutMs !== undefined ? { timeout: connectTimeoutMs } : {}) });
  }

  /** Resolves a name to the address to use, refusing it like {@link lookup} (for dgram sends). */
  resolveChecked(host: string): Promise<LookupAddress> {
    return new Promise((resolve, reject) => {
      this.lookup(host, { all: false }, (err, address, family) => (err ? reject(err) : resolve({ address: address as string, family: family! })));
    });
  }

  private resolveAll(hostname: string): Promise<LookupAddress[]> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve([]), this.resolveTimeoutMs);
      this.resolve(hostname, { all: true }, (err, addresses) => {
        clearTimeout(timer);
        resolve(err || !addresses ? [] : addresses);
      });
    });
  }
}

function forbidden(field: string, host: string, address: string, reason: string): AppError {
  const where = host === address ? address : `${host} (${address})`;
  return new AppError(400, 'forbidden_destination', `${field}: Switchboard does not connect to ${where}: ${reason}`, { field, reason });
}

/** Whether an error is a refusal by the policy (by code, never by message). */
export function isForbiddenDestination(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === FORBIDDEN_DESTINATION;
}

/** Expands an IPv6 address to its eight 16-bit groups, or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A dotted IPv4 tail (::ffff:1.2.3.4, ::1.2.3.4) becomes two groups.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = dotted[2]!.split('.').map(Number);
    text = `${dotted[1]}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...tail].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** The IPv4 address an IPv6 one carries (IPv4-compatible, NAT64 well-known prefix, 6to4), if any. */
export function embeddedIpv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (!g) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  // ::a.b.c.d (deprecated IPv4-compatible; not :: or ::1)
  if (g.slice(0, 6).every((x) => x === 0) && (g[6] !== 0 || g[7]! > 1)) return v4(g[6]!, g[7]!);
  // 64:ff9b::a.b.c.d (NAT64 well-known prefix, RFC 6052)
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4(g[6]!, g[7]!);
  // 2002:AABB:CCDD::/48 (6to4, RFC 3056)
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  return undefined;
}
