import { isIPv4, isIPv6 } from 'node:net';

/**
 * Whether an address the API listens on is reachable only from this machine: `localhost`, an
 * IPv4 address in 127.0.0.0/8, `::1`, or an IPv4-mapped loopback (`::ffff:127.x.y.z`). Anything
 * else — `0.0.0.0`, `::`, a routable address, a host name — is taken as reachable from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^(?:::|(?:0{1,4}:){5})ffff:([\d.]+)$/.exec(h)?.[1];
    return mapped !== undefined && isIPv4(mapped) && mapped.startsWith('127.');
  }
  return false;
}

/**
 * The start-up warning for an instance whose writes are open to the network: no auth token and a
 * non-loopback listen address (the default HOST is 0.0.0.0). One line; undefined when there is
 * nothing to warn about. Pure: the caller logs it.
 */
export function openWritesWarning(opts: { host: string; port: number; authToken?: string | undefined; turnCredentialsOpen?: boolean }): string | undefined {
  if (opts.authToken || isLoopbackHost(opts.host)) return undefined;
  const turn = opts.turnCredentialsOpen ? ' GET /turn/ice-servers also hands out TURN credentials to anyone.' : '';
  return (
    `No AUTH_TOKEN is set and the API listens on ${opts.host}:${opts.port}, which is not loopback: every write — ` +
    `register, heartbeat, rooms, room-closed, drain, delete — is open to anyone who reaches the port.${turn} ` +
    'Set AUTH_TOKEN (auth.token) to require a bearer token, or HOST=127.0.0.1 to listen on loopback only.'
  );
}
