import * as util from 'node:util';
import type { Command } from 'commander';
import { request } from 'undici';
import type { PoolSummary } from '../dashboard/types.js';

/** What `GET /pools` answers per pool. */
type PoolRow = PoolSummary;

/** The fields of a server view (src/api/schemas.ts, ServerView) that `status` shows. */
interface ServerRow {
  serverId: string;
  kind: string;
  capacity: number;
  used: number;
  free: number;
  weight: number;
  region?: string;
  adminState: string;
  healthy: boolean;
  health: { status: string; lastError?: string; latencyMs?: number; lastCheck: string | null };
  placements: number;
  lastHeartbeat: string;
}

/** `status --json`: stable keys; absent values are null, never missing. */
export interface StatusJson {
  url: string;
  fetchedAt: string;
  pools: PoolRow[];
  servers: {
    pool: string;
    serverId: string;
    health: string;
    healthy: boolean;
    lastError: string | null;
    adminState: string;
    capacity: number;
    used: number;
    free: number;
    placements: number;
    weight: number;
    region: string | null;
    heartbeatAgeSeconds: number | null;
  }[];
}

class StatusError extends Error {}

function defaultUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `http://127.0.0.1:${env.APP_PORT && /^\d+$/.test(env.APP_PORT) ? env.APP_PORT : '3001'}`;
}

/** The socket error code under fetch's `TypeError: fetch failed` (ECONNREFUSED, ENOTFOUND, ...). */
function errorCode(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; errors?: { code?: string }[]; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  return e.cause?.code ?? e.cause?.errors?.[0]?.code ?? e.code ?? e.cause?.message ?? e.message ?? String(err);
}

async function getJson<T>(base: string, path: string, token: string | undefined, timeoutMs: number): Promise<T> {
  const shown = base.replace(/\/+$/, '');
  let status: number;
  let text: string;
  try {
    // undici's request, not fetch: fetch refuses some ports outright ("bad port").
    const res = await request(new URL(path, base), {
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new StatusError(`cannot reach Switchboard at ${shown}: ${errorCode(err)} — is it running? set --url`);
  }
  if (status !== 200) {
    let message = text.slice(0, 200);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      /* not JSON */
    }
    throw new StatusError(`Switchboard at ${shown} answered ${status} to GET /${path}: ${message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new StatusError(`Switchboard at ${shown} answered GET /${path} with something that is not JSON — is --url a Switchboard?`);
  }
}

/** Fetches the picture: `/pools` and every pool's server list, at once. */
export async function fetchStatus(url: string, token?: string, timeoutMs = 5000, now = Date.now()): Promise<StatusJson> {
  const base = url.endsWith('/') ? url : `${url}/`;
  const pools = await getJson<PoolRow[]>(base, 'pools', token, timeoutMs);
  // Every pool the service has (rooms, turn, origins, the proxy's HTTP pools), by one route.
  const lists = await Promise.all(pools.map((p) => getJson<{ servers: ServerRow[] }>(base, `pools/${encodeURIComponent(p.pool)}/servers`, token, timeoutMs)));
  const servers: StatusJson['servers'] = [];
  pools.forEach((route, i) => {
    for (const s of lists[i]!.servers) {
      const beat = Date.parse(s.lastHeartbeat);
      servers.push({
        pool: route.pool,
        serverId: s.serverId,
        health: s.health.status,
        healthy: s.healthy,
        lastError: s.health.lastError ?? null,
        adminState: s.adminState,
        capacity: s.capacity,
        used: s.used,
        free: s.free,
        placements: s.placements,
        weight: s.weight,
        region: s.region ?? null,
        heartbeatAgeSeconds: Number.isFinite(beat) ? Math.max(0, Math.round((now - beat) / 1000)) : null,
      });
    }
  });
  return { url: url.replace(/\/+$/, ''), fetchedAt: new Date(now).toISOString(), pools: pools.map(pick), servers };
}

/** Only the documented keys, in a fixed order (the API may grow). */
const pick = (p: PoolRow): PoolRow => ({
  pool: p.pool,
  servers: p.servers,
  healthy: p.healthy,
  placeable: p.placeable,
  capacity: p.capacity,
  used: p.used,
  free: p.free,
  placements: p.placements,
});

type Style = 'red' | 'green' | 'yellow' | 'cyan' | 'gray' | 'bold';
const ANSI: Record<Style, [number, number]> = { red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39], gray: [90, 39], bold: [1, 22] };
/** node:util styleText (Node 20.12+), else the same ANSI codes by hand. */
const styleText = (util as { styleText?: (format: Style, text: string) => string }).styleText;
export const paint = (color: boolean) => (style: Style, text: string) =>
  !color || text === '' ? text : styleText ? styleText(style, text) : `\u001b[${ANSI[style][0]}m${text}\u001b[${ANSI[style][1]}m`;

/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function useColor(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && !(env.NO_COLOR !== undefined && env.NO_COLOR !== '');
}

const compactNumber = (n: number) =>
  n >= 1e12 ? '∞' : n >= 1e9 ? `${+(n / 1e9).toFixed(1)}G` : n >= 1e6 ? `${+(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${+(n / 1e3).toFixed(1)}k` : String(n);

function bar(used: number, capacity: number, width: number, color: boolean, c: ReturnType<typeof paint>): string {
  const ratio = capacity > 0 ? Math.min(1, Math.max(0, used / capacity)) : 0;
  const filled = Math.round(ratio * width);
  const [on, off] = color ? ['█', '░'] : ['#', '.'];
  const style: Style = ratio >= 0.9 ? 'red' : ratio >= 0.7 ? 'yellow' : 'green';
  return `[${c(style, on.repeat(filled))}${c('gray', off.repeat(width - filled))}]`;
}

const age = (s: number | null) => (s === null ? '-' : s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`);

/** Pads to `width` by visible length (escape codes take no room). */
function pad(text: string, width: number): string {
  // eslint-disable-next-line no-control-regex
  const visible = text.replace(/\u001b\[[0-9;]*m/g, '').length;
  return text + ' '.repeat(Math.max(0, width - visible));
}

function table(rows: string[][], indent = ''): string[] {
  // eslint-disable-next-line no-control-regex
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').replace(/\u001b\[[0-9;]*m/g, '').length)));
  return rows.map((r) => indent + r.map((cell, i) => (i === r.length - 1 ? cell : pad(cell, widths[i]!))).join('  ').trimEnd());
}

/** The human picture: pools, then each pool's servers. */
export function renderStatus(status: StatusJson, color: boolean): string {
  const c = paint(color);
  const out: string[] = [c('bold', `Switchboard ${status.url}`), ''];
  out.push(
    ...table([
      ['POOL', 'SERVERS', 'HEALTHY', 'PLACEABLE', 'USED', '', 'FREE', 'PLACEMENTS'].map((h) => c('bold', h)),
      ...status.pools.map((p) => [
        c('cyan', p.pool),
        String(p.servers),
        p.servers === 0 ? '0' : c(p.healthy === p.servers ? 'green' : p.healthy === 0 ? 'red' : 'yellow', String(p.healthy)),
        String(p.placeable),
        bar(p.used, p.capacity, 10, color, c),
        `${compactNumber(p.used)}/${compactNumber(p.capacity)}`,
        compactNumber(p.free),
        String(p.placements),
      ]),
    ]),
  );
  for (const pool of status.pools) {
    const servers = status.servers.filter((s) => s.pool === pool.pool);
    out.push('', c('bold', `${pool.pool}: ${servers.length} server${servers.length === 1 ? '' : 's'}`));
    if (servers.length === 0) {
      out.push(c('gray', '  (none registered)'));
      continue;
    }
    out.push(
      ...table(
        [
          ['SERVER', 'HEALTH', 'ADMIN', 'CAPACITY', '', 'PLACEMENTS', 'REGION', 'HEARTBEAT', 'LAST ERROR'].map((h) => c('bold', h)),
          ...servers.map((s) => [
            s.serverId,
            c(s.health === 'healthy' ? 'green' : s.health === 'unhealthy' ? 'red' : 'yellow', s.health),
            s.adminState === 'active' ? s.adminState : c('yellow', s.adminState),
            bar(s.used, s.capacity, 10, color, c),
            `${compactNumber(s.used)}/${compactNumber(s.capacity)} (${compactNumber(s.free)} free)`,
            String(s.placements),
            s.region ?? '-',
            age(s.heartbeatAgeSeconds),
            s.lastError === null ? '' : c('red', s.lastError),
          ]),
        ],
        '  ',
      ),
    );
  }
  return out.join('\n') + '\n';
}

/** `switchboard status`: the pools and servers of a running Switchboard, for people and scripts. */
export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show pools and servers of a running Switchboard: health, admin state, capacity (exit 1 when it cannot be reached)')
    .option('-u, --url <url>', 'Switchboard base URL (default: http://127.0.0.1:$APP_PORT, else port 3001)')
    .option('--json', 'machine-readable output (stable keys)')
    .option('--token <token>', 'bearer token to send (reads are open unless a proxy in front asks for one)')
    .option('--timeout <ms>', 'per-request timeout in ms', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new Error('--timeout must be a positive integer (ms)');
      return n;
    })
    .action(async (opts: { url?: string; json?: boolean; token?: string; timeout?: number }) => {
      const url = opts.url ?? defaultUrl();
      try {
        new URL(url);
      } catch {
        console.error(`switchboard status: --url ${url} is not a URL (e.g. http://127.0.0.1:3001)`);
        process.exitCode = 2;
        return;
      }
      try {
        const status = await fetchStatus(url, opts.token, opts.timeout ?? 5000);
        process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status, useColor()));
      } catch (err) {
        if (!(err instanceof StatusError)) throw err;
        console.error(`switchboard status: ${err.message}`);
        process.exitCode = 1;
      }
    });
}
