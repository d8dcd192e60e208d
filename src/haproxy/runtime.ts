import { connect, type Socket } from 'node:net';

/**
 * A client of HAProxy's Runtime API (the stats socket): one command per connection — HAProxy
 * answers and closes — bounded by a timeout. The address is a unix socket path (optionally
 * `unix@<path>`) or `ipv4@host:port` / `ipv6@[host]:port` / `host:port`.
 */
export class RuntimeApiError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly output?: string,
  ) {
    super(message);
    this.name = 'RuntimeApiError';
  }
}

export type RuntimeAddress = { path: string } | { host: string; port: number };

export function parseRuntimeAddress(address: string): RuntimeAddress {
  const tcp = /^(?:ipv4@|ipv6@|tcp@)?\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (/^(ipv4|ipv6|tcp)@/.test(address) || (tcp && !address.includes('/'))) {
    if (!tcp) throw new Error(`not a Runtime API address: ${address}`);
    return { host: tcp[1] || '127.0.0.1', port: Number(tcp[2]) };
  }
  return { path: address.replace(/^unix@/, '') };
}

/** Output prefixes HAProxy 2.6 answers a refused command with (it never sets a status code). */
const ERROR_PATTERNS = [
  /^No such (server|backend|map|table)/i,
  /^Unknown command/i,
  /^Require /i,
  /^Permission denied/i,
  /^entry not found/i,
  /^Key not found/i,
  /^Unknown map/i,
  /^Missing /i,
  /^Invalid /i,
  /^'[^']+' (only supports|expects|requires)/i,
  /^Can't /i,
  /^Failed /i,
  /unknown keyword/i,
  /^Unsupported/i,
  /^Out of memory/i,
  /^Backend is using a static LB algorithm/i,
  /only supported through configuration file/i,
];

export function isErrorOutput(output: string): boolean {
  const first = output.trimStart().split('\n', 1)[0] ?? '';
  return ERROR_PATTERNS.some((re) => re.test(first));
}

export class RuntimeApi {
  readonly address: RuntimeAddress;

  constructor(
    address: string,
    private readonly timeoutMs = 2_000,
  ) {
    this.address = parseRuntimeAddress(address);
  }

  /** Sends one command and resolves with HAProxy's whole answer. Rejects on socket errors and timeouts only. */
  raw(command: string): Promise<string> {
    if (/[\r\n]/.test(command)) return Promise.reject(new RuntimeApiError('a command must be one line', command));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const socket: Socket = 'path' in this.address ? connect(this.address.path) : connect(this.address.port, this.address.host);
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(Buffer.concat(chunks).toString('utf8'));
      };
      const timer = setTimeout(() => done(new RuntimeApiError(`no answer within ${this.timeoutMs} ms`, command)), this.timeoutMs);
      socket.on('connect', () => socket.end(`${command}\n`));
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => done());
      socket.on('close', () => done());
      socket.on('error', (err) => done(new RuntimeApiError(`${describe(this.address)}: ${err.message}`, command)));
    });
  }

  /** Sends one command; rejects when HAProxy refuses it. */
  async command(command: string): Promise<string> {
    const output = await this.raw(command);
    if (isErrorOutput(output)) throw new RuntimeApiError(`HAProxy refused "${command}": ${output.trim()}`, command, output);
    return output;
  }

  async showServersState(backend?: string): Promise<ServerState[]> {
    return parseServersState(await this.command(backend ? `show servers state ${backend}` : 'show servers state'));
  }

  async showMap(map: string): Promise<MapEntry[]> {
    return parseMap(await this.command(`show map ${map}`));
  }

  /** `show map` without argument: the maps HAProxy loaded. */
  async listMaps(): Promise<{ id: number; file: string }[]> {
    const out = await this.command('show map');
    const maps: { id: number; file: string }[] = [];
    for (const line of out.split('\n')) {
      const m = /^(-?\d+) \(([^)]*)\)/.exec(line);
      if (m) maps.push({ id: Number(m[1]), file: m[2]! });
    }
    return maps;
  }

  async showStat(): Promise<Record<string, string>[]> {
    return parseCsv(await this.command('show stat'));
  }

  async showInfo(): Promise<Record<string, string>> {
    const info: Record<string, string> = {};
    for (const line of (await this.command('show info')).split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    return info;
  }
}

function describe(a: RuntimeAddress): string {
  return 'path' in a ? a.path : `${a.host}:${a.port}`;
}

/** One row of `show servers state` (format version 1). */
export interface ServerState {
  backend: string;
  name: string;
  addr: string;
  port: number;
  /** 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** Mask: 0x01 forced maint, 0x02 inherited maint, 0x04 configured maint, 0x08 forced drain, 0x10 inherited drain, 0x20 resolution maint. */
  adminState: number;
  weight: number;
  initialWeight: number;
  /** The administrative state Switchboard writes (`set server ... state`), read back. */
  state: 'ready' | 'drain' | 'maint';
  /** Whether traffic can reach it: running and not in maintenance. */
  up: boolean;
  fields: Record<string, string>;
}

export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n');
  let header: string[] | undefined;
  const rows: ServerState[] = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    if (line.startsWith('#')) {
      header = line.slice(1).trim().split(/\s+/);
      continue;
    }
    if (!header) continue; // the format version line
    const values = line.trim().split(/\s+/);
    const f: Record<string, string> = {};
    header.forEach((h, i) => (f[h] = values[i] ?? ''));
    const admin = Number(f.srv_admin_state);
    const op = Number(f.srv_op_state);
    const maint = (admin & 0x23) !== 0;
    rows.push({
      backend: f.be_name ?? '',
      name: f.srv_name ?? '',
      addr: f.srv_addr ?? '',
      port: Number(f.srv_port ?? 0),
      opState: op,
      adminState: admin,
      weight: Number(f.srv_uweight),
      initialWeight: Number(f.srv_iweight),
      state: maint ? 'maint' : (admin & 0x18) !== 0 ? 'drain' : 'ready',
      up: !maint && op !== 0,
      fields: f,
    });
  }
  return rows;
}

export interface MapEntry {
  ref: string;
  key: string;
  value: string;
}

export function parseMap(text: string): MapEntry[] {
  const entries: MapEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(0x[0-9a-f]+) (\S+) (.*)$/i.exec(line);
    if (m) entries.push({ ref: m[1]!, key: m[2]!, value: m[3]! });
  }
  return entries;
}

/** `show stat` CSV: the header line starts with `# `. */
export function parseCsv(text: string): Record<string, string>[] {
  const lines = text.split('\n').filter((l) => l.trim());
  const header = lines[0]?.replace(/^#\s*/, '').split(',') ?? [];
  return lines.slice(1).map((l) => {
    const values = l.split(',');
    const row: Record<string, string> = {};
    header.forEach((h, i) => {
      if (h) row[h] = values[i] ?? '';
    });
    return row;
  });
}
