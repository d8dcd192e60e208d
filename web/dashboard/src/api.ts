import type { Activity, ServerView, StatsHistory } from './types';

/**
 * Where Switchboard's API is: the page lives at `<base>/dashboard/`, the API at `<base>/`
 * (base is empty unless a reverse proxy mounts Switchboard under a prefix).
 */
export const apiBase = location.pathname.replace(/\/dashboard(?:\/.*)?$/, '').replace(/\/$/, '');
export const apiUrl = (path: string) => `${apiBase}${path}`;

const TOKEN_KEY = 'switchboard.token';

export function savedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function saveToken(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* storage disabled: the token lives for this action only */
  }
}

export type AdminAction = 'drain' | 'undrain' | 'deregister';

/** Asks the operator for the bearer token; null when they cancel. */
export type TokenPrompt = (reason: 'missing' | 'wrong') => Promise<string | null>;

export class ActionError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export class Cancelled extends Error {}

const routes: Record<AdminAction, { method: string; suffix: string }> = {
  drain: { method: 'POST', suffix: '/drain' },
  undrain: { method: 'DELETE', suffix: '/drain' },
  deregister: { method: 'DELETE', suffix: '' },
};

/**
 * Drain, undrain or deregister a server. Without a configured token the API acts at once; on a
 * 401 the operator is asked for the token (once: it is kept in sessionStorage for this tab) and
 * the request is sent again with `Authorization: Bearer <token>`.
 */
export async function adminAction(pool: string, serverId: string, action: AdminAction, promptToken: TokenPrompt): Promise<ServerView> {
  const { method, suffix } = routes[action];
  const url = apiUrl(`/pools/${encodeURIComponent(pool)}/servers/${encodeURIComponent(serverId)}${suffix}`);
  let token = savedToken();
  for (let attempt = 0; attempt < 4; attempt++) {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(url, { method, headers });
    const body = (await res.json().catch(() => null)) as (ServerView & { error?: string; message?: string }) | null;
    if (res.ok && body) return body;
    if (res.status === 401) {
      const reason = token ? 'wrong' : 'missing';
      saveToken(null);
      token = await promptToken(reason);
      if (token === null) throw new Cancelled('cancelled');
      token = token.trim();
      saveToken(token);
      continue;
    }
    throw new ActionError(body?.message ?? `${method} ${url}: HTTP ${res.status}`, res.status, body?.error);
  }
  throw new ActionError('the token was refused', 401, 'unauthorized');
}

async function getJson<T>(path: string): Promise<T | null> {
  const res = await fetch(apiUrl(path), { headers: { accept: 'application/json' } });
  if (!res.ok) return null;
  return (await res.json()) as T;
}

/** The log's last entries; the server's default count when it refuses this one. */
export const fetchActivity = async (limit: number) => (await getJson<{ entries: Activity[] }>(`/activity?limit=${limit}`)) ?? getJson<{ entries: Activity[] }>('/activity');
export const fetchStatsHistory = () => getJson<StatsHistory>('/stats/history');
