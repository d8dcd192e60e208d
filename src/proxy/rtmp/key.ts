/**
 * The stream key the RTMP proxy resolves: `vhost/app/stream`, as SRS's proxy builds it. Pure.
 */

export const DEFAULT_VHOST = '__defaultVhost__';

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The part of `s` before `?`, and the query after it (without `?`). */
export function splitQuery(s: string): { path: string; query: string } {
  const i = s.indexOf('?');
  return i < 0 ? { path: s, query: '' } : { path: s.slice(0, i), query: s.slice(i + 1) };
}

/** Host of an `rtmp://host[:port]/...` URL, lower-cased ('' when there is none). */
export function tcUrlHost(tcUrl: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^/:?#]*)/i.exec(tcUrl);
  return (m?.[1] ?? '').toLowerCase();
}

/** The app of an `rtmp://host/app/...` URL (path after the host, query dropped). */
export function tcUrlApp(tcUrl: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*\/([^?#]*)/i.exec(tcUrl);
  return m?.[1] ?? '';
}

function queryParam(query: string, names: readonly string[]): string | undefined {
  for (const part of query.split(/[&?]/)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).toLowerCase();
    if (names.includes(k) && eq + 1 < part.length) return part.slice(eq + 1);
  }
  return undefined;
}

/**
 * `vhost/app/stream` for a connect's tcUrl and app and a publish/play stream name. The vhost is
 * the tcUrl host when it has a dot and is not an IP address, else `__defaultVhost__`; a
 * `vhost=` (or `domain=`) query parameter on the tcUrl, app or stream overrides it (SRS does
 * the same). Queries are dropped from app and stream.
 */
export function streamKey(tcUrl: string | undefined, app: string | undefined, stream: string): string {
  const a = splitQuery(app ?? (tcUrl !== undefined ? tcUrlApp(tcUrl) : ''));
  const s = splitQuery(stream);
  const t = splitQuery(tcUrl ?? '');
  let vhost = DEFAULT_VHOST;
  const host = tcUrl !== undefined ? tcUrlHost(tcUrl) : '';
  if (host.includes('.') && !IPV4.test(host) && !host.startsWith('[')) vhost = host;
  const override = queryParam(s.query, ['vhost', 'domain']) ?? queryParam(a.query, ['vhost', 'domain']) ?? queryParam(t.query, ['vhost', 'domain']);
  if (override !== undefined) vhost = override.toLowerCase();
  const appName = a.path.replace(/^\/+|\/+$/g, '');
  return `${vhost}/${appName}/${s.path}`;
}
