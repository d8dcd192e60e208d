/**
 * SRS's registration body (seed 003: `POST /api/v1/srs/register`, what SRS's `heartbeat` sends),
 * checked and turned into an origin registration. Pure: no I/O, no clock.
 *
 * Body: `{ip, server, service, pid, rtmp:[...], http:[...], api:[...], srt:[...], rtc:[...],
 * device_id}`. Listen entries are strings: a bare port (`"1935"`), `host:port`, `[v6]:port`,
 * or with a scheme, `tcp://:1935`, `udp://0.0.0.0:8000` (SRS's listen format).
 */
import type { Server } from '../../core/model.js';

/** Protocols an origin lists listen endpoints for, in display order. */
export const ORIGIN_PROTOCOLS = ['rtmp', 'http', 'api', 'srt', 'rtc'] as const;
export type OriginProtocol = (typeof ORIGIN_PROTOCOLS)[number];

/** One parsed listen entry: `host` is undefined for a bare port, empty or wildcard host. */
export interface ListenEntry {
  scheme?: string;
  host?: string;
  port: number;
}

/** A refused body: the field (`body.rtmp[0]`) and why. */
export class SrsBodyError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field} ${reason}`);
    this.name = 'SrsBodyError';
  }
}

/** What an origin registers: the same shape for SRS's body and the generic API. */
export interface OriginRegistration {
  serverId: string;
  /** Address Switchboard connects to (SRS's `ip`). */
  host: string;
  listen: Record<OriginProtocol, string[]>;
  region?: string;
  capacity?: number;
  /** SRS's `device_id`: a label only. */
  deviceId?: string;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]', '*']);
const ID_PART = /^[A-Za-z0-9._~:@-]+$/;
const HOST = /^[A-Za-z0-9.:_-]+$/;
const MAX_ENTRIES = 32;

/** Parses one listen entry; undefined when it is not a valid one (port 1..65535 required). */
export function parseListen(entry: string): ListenEntry | undefined {
  if (entry.length === 0 || entry.length > 300) return undefined;
  let rest = entry;
  let scheme: string | undefined;
  const m = /^([a-z][a-z0-9+.-]{0,15}):\/\/(.*)$/i.exec(entry);
  if (m) {
    scheme = m[1]!.toLowerCase();
    rest = m[2]!;
  }
  let host: string | undefined;
  let portText: string;
  if (/^\d+$/.test(rest)) portText = rest;
  else {
    const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(rest);
    const plain = /^([^:[\]/\s@?#]*):(\d+)$/.exec(rest);
    const hit = v6 ?? plain;
    if (!hit) return undefined;
    host = hit[1]!;
    portText = hit[2]!;
    if (!v6 && host !== '' && !HOST.test(host)) return undefined;
  }
  if (portText.length > 5) return undefined;
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  const out: ListenEntry = { port };
  if (scheme !== undefined) out.scheme = scheme;
  if (host !== undefined && !WILDCARDS.has(host)) out.host = host;
  return out;
}

/** Where Switchboard reaches a listen entry: its own host, else the origin's address. */
export function listenAddress(originHost: string, entry: string): { host: string; port: number } | undefined {
  const parsed = parseListen(entry);
  return parsed ? { host: parsed.host ?? originHost, port: parsed.port } : undefined;
}

/**
 * Where Switchboard reaches an origin for `protocol`: its first listen entry of that protocol, at
 * the entry's own host or else the origin's. Undefined when it registered none (or no host).
 */
export function originListen(origin: Pick<Server, 'endpoints'>, protocol: OriginProtocol): { host: string; port: number } | undefined {
  const entry = listenEntries(origin.endpoints, protocol)[0];
  const addr = entry !== undefined ? listenAddress(origin.endpoints.host ?? '', entry) : undefined;
  return addr && addr.host !== '' ? addr : undefined;
}

/** Checks a list of listen entries (absent or null: empty, unless `required`). */
export function checkListenList(value: unknown, field: string, required: boolean): string[] {
  if (value === undefined || value === null) {
    if (required) throw new SrsBodyError(field, 'is required: a non-empty list of listen endpoints (e.g. ["1935"])');
    return [];
  }
  if (!Array.isArray(value)) throw new SrsBodyError(field, 'must be a list of listen endpoints (strings such as "1935" or "host:1935")');
  if (required && value.length === 0) throw new SrsBodyError(field, 'must be a non-empty list of listen endpoints');
  if (value.length > MAX_ENTRIES) throw new SrsBodyError(field, `must have at most ${MAX_ENTRIES} entries`);
  return value.map((entry, i) => {
    if (typeof entry !== 'string') throw new SrsBodyError(`${field}[${i}]`, 'must be a string: a port ("1935") or host:port');
    if (!parseListen(entry)) throw new SrsBodyError(`${field}[${i}]`, 'must be a valid listen endpoint: a port 1-65535 ("1935"), host:port, or scheme://[host]:port');
    return entry;
  });
}

function idPart(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  const field = `body.${key}`;
  if (v === undefined || v === null) throw new SrsBodyError(field, 'is required: a non-empty string');
  if (typeof v !== 'string') throw new SrsBodyError(field, 'must be a string');
  if (v.length === 0) throw new SrsBodyError(field, 'must not be empty');
  if (v.length > 40) throw new SrsBodyError(field, 'must be at most 40 characters');
  if (!ID_PART.test(v)) throw new SrsBodyError(field, 'must be of A-Z a-z 0-9 . _ ~ : @ -');
  return v;
}

/**
 * Checks SRS's register body and returns the registration, or throws {@link SrsBodyError} naming
 * the first bad field. Unknown fields are ignored (SRS may send more, e.g. summaries).
 */
export function parseSrsRegister(body: unknown): OriginRegistration {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new SrsBodyError('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  const ip = b.ip;
  if (ip === undefined || ip === null) throw new SrsBodyError('body.ip', 'is required: the address Switchboard reaches the origin at');
  if (typeof ip !== 'string') throw new SrsBodyError('body.ip', 'must be a string');
  if (ip.length === 0) throw new SrsBodyError('body.ip', 'must not be empty');
  if (ip.length > 253 || !HOST.test(ip)) throw new SrsBodyError('body.ip', 'must be an IP address or host name');
  const server = idPart(b, 'server');
  const service = idPart(b, 'service');
  const pid = idPart(b, 'pid');
  const listen = {} as Record<OriginProtocol, string[]>;
  for (const p of ORIGIN_PROTOCOLS) listen[p] = checkListenList(b[p], `body.${p}`, p === 'rtmp');
  const reg: OriginRegistration = { serverId: srsServerId(server, service, pid), host: ip, listen };
  const device = b.device_id;
  if (device !== undefined && device !== null && device !== '') {
    if (typeof device !== 'string') throw new SrsBodyError('body.device_id', 'must be a string');
    if (device.length > 256) throw new SrsBodyError('body.device_id', 'must be at most 256 characters');
    reg.deviceId = device;
  }
  return reg;
}

/** SRS's server identity: `server-service-pid` (a restarted SRS has a new service id and pid). */
export function srsServerId(server: string, service: string, pid: string): string {
  return `${server}-${service}-${pid}`;
}

/** A registration's endpoints as the store keeps them: the host, and each protocol's entries comma-joined. */
export function originEndpoints(reg: OriginRegistration): Record<string, string> {
  const e: Record<string, string> = { host: reg.host };
  for (const p of ORIGIN_PROTOCOLS) if (reg.listen[p].length > 0) e[p] = reg.listen[p].join(',');
  return e;
}

/** The listen entries of one protocol back from stored endpoints. */
export function listenEntries(endpoints: Record<string, string>, protocol: OriginProtocol): string[] {
  const v = endpoints[protocol];
  return v ? v.split(',') : [];
}

/**
 * Whether an origin not heard from since `lastHeartbeat` is alive at `now`; the health to write
 * when its recorded health disagrees (undefined: nothing to change).
 */
export function aliveHealth(
  health: { status: string; successes: number; failures: number; since: number; lastCheck: number; lastError?: string },
  lastHeartbeat: number,
  now: number,
  aliveMs: number,
): { status: 'healthy' | 'unhealthy'; successes: number; failures: number; since: number; lastCheck: number; lastError?: string } | undefined {
  const alive = now - lastHeartbeat <= aliveMs;
  if (alive && health.status === 'healthy') return undefined;
  if (!alive && health.status === 'unhealthy') return undefined;
  if (alive) return { status: 'healthy', successes: 1, failures: 0, since: now, lastCheck: now };
  return {
    status: 'unhealthy',
    successes: 0,
    failures: 1,
    since: now,
    lastCheck: now,
    lastError: `not registered for ${Math.round((now - lastHeartbeat) / 1000)} s (alive: within ${Math.round(aliveMs / 1000)} s)`,
  };
}
