/**
 * Stream identities (seed 003), pure: no I/O, no clock. A stream is `vhost/app/stream`, the key its
 * origin mapping and session indexes live under, whichever protocol it arrives by (RTMP's tcUrl and
 * stream name, HTTP-FLV/HLS paths, ...). Every refusal is an AppError 400 naming the field.
 */
import { isIP } from 'node:net';
import { AppError } from '../../errors.js';

/** SRS's vhost for hosts that name no virtual host (absent, an IP literal, or without a dot). */
export const DEFAULT_VHOST = '__defaultVhost__';

/** Extensions stripped from a stream name (HTTP-FLV, HLS playlist, TS). */
export type StreamExt = 'flv' | 'm3u8' | 'ts';
const EXTENSION = /\.(flv|m3u8|ts)$/;

const MAX_PART = 256;
const VHOST = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** Whether a string holds a control character (C0 or DEL). */
export function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function bad(field: string, reason: string): AppError {
  return new AppError(400, 'bad_request', `${field} ${reason}`, { field, reason });
}

/** Checks a name that may hold `/`-separated segments (an app) or must be one segment (a stream). */
function checkPart(field: string, value: string, segments: boolean): string {
  if (value.length === 0) throw bad(field, 'must not be empty');
  if (value.length > MAX_PART) throw bad(field, `must be at most ${MAX_PART} characters`);
  if (hasControl(value)) throw bad(field, 'must not contain control characters');
  if (!segments && value.includes('/')) throw bad(field, 'must not contain "/"');
  if (value.includes('..')) throw bad(field, 'must not contain ".."');
  for (const seg of value.split('/')) {
    if (seg === '') throw bad(field, 'must not have empty path segments');
    if (seg === '.') throw bad(field, 'must not have "." path segments');
  }
  return value;
}

/** Drops a `:port` (and the brackets of `[v6]`) from a host. */
function hostOnly(host: string): string {
  const v6 = /^\[([^\]]*)\](?::\d*)?$/.exec(host);
  if (v6) return v6[1]!;
  const colons = host.split(':').length - 1;
  if (colons === 1) return host.slice(0, host.indexOf(':'));
  return host; // no port, or an unbracketed IPv6 literal
}

/**
 * The vhost SRS uses for a host (a Host header, a tcUrl's host or its `?vhost=`): the host, lower
 * case and without its port, or `__defaultVhost__` when absent, an IP literal, or without a dot.
 */
export function vhostOf(vhostOrHost: string | undefined): string {
  if (vhostOrHost === undefined) return DEFAULT_VHOST;
  if (vhostOrHost.length > MAX_PART) throw bad('vhost', `must be at most ${MAX_PART} characters`);
  if (hasControl(vhostOrHost)) throw bad('vhost', 'must not contain control characters');
  const host = hostOnly(vhostOrHost.trim()).toLowerCase().replace(/\.$/, '');
  if (host === '' || host === DEFAULT_VHOST.toLowerCase() || isIP(host) !== 0 || !host.includes('.')) return DEFAULT_VHOST;
  if (!VHOST.test(host)) throw bad('vhost', 'must be a host name (letters, digits, "-", "_" and dots)');
  return host;
}

/** A stream name without its `?query` and its `.flv`/`.m3u8`/`.ts` extension. */
export function bareStream(stream: string): { stream: string; ext?: StreamExt } {
  const q = stream.indexOf('?');
  const name = q === -1 ? stream : stream.slice(0, q);
  const m = EXTENSION.exec(name);
  return m ? { stream: name.slice(0, -m[0].length), ext: m[1] as StreamExt } : { stream: name };
}

/**
 * `vhost/app/stream`: the key of a stream. The vhost follows SRS's rule ({@link vhostOf}); the
 * stream loses its `?query` and extension. Refused (400 naming `app` or `stream`): empty parts,
 * `..`, control characters, a `/` in the stream, parts over 256 characters.
 */
export function streamKey(vhostOrHost: string | undefined, app: string, stream: string): string {
  const vhost = vhostOf(vhostOrHost);
  const a = checkPart('app', typeof app === 'string' ? app.replace(/^\/+|\/+$/g, '') : '', true);
  const s = checkPart('stream', bareStream(typeof stream === 'string' ? stream : '').stream, false);
  return `${vhost}/${a}/${s}`;
}

/**
 * An RTMP tcUrl (`rtmp://host[:port]/app[/...]`, also rtmps/rtmpt/rtmpe/rtmpte/rtmpts) → its host
 * and app. The whole path is the app (SRS: everything between the host and the stream name); a
 * `?vhost=` parameter names the vhost instead of the host, as in SRS. 400 (field `tcUrl`) when it
 * is not such a URL.
 */
export function parseTcUrl(tcUrl: string): { host: string; app: string } {
  if (typeof tcUrl !== 'string' || tcUrl.length === 0) throw bad('tcUrl', 'must not be empty');
  if (tcUrl.length > 2048) throw bad('tcUrl', 'must be at most 2048 characters');
  if (hasControl(tcUrl)) throw bad('tcUrl', 'must not contain control characters');
  const m = /^rtmp(?:s|t|e|te|ts)?:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(?:#.*)?$/i.exec(tcUrl);
  if (!m) throw bad('tcUrl', 'must be an RTMP URL: rtmp://host[:port]/app');
  const authority = m[1]!.slice(m[1]!.lastIndexOf('@') + 1);
  if (authority === '') throw bad('tcUrl', 'must name a host: rtmp://host[:port]/app');
  let host = authority;
  const vhost = m[3] !== undefined ? new URLSearchParams(m[3]).get('vhost') : null;
  if (vhost) host = vhost;
  const app = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (app === '') throw bad('tcUrl', 'must name an app: rtmp://host[:port]/app');
  checkPart('app', app, true);
  return { host, app };
}

/**
 * An HTTP-FLV/HLS path `/app[/...]/stream.(flv|m3u8|ts)[?query]` → app, stream and extension.
 * Segments are percent-decoded before they are checked. 400 (field `path`) for any other path.
 */
export function streamFromHttpPath(path: string): { app: string; stream: string; ext: StreamExt } {
  if (typeof path !== 'string' || path.length === 0) throw bad('path', 'must not be empty');
  if (path.length > 2048) throw bad('path', 'must be at most 2048 characters');
  const q = path.indexOf('?');
  const bare = q === -1 ? path : path.slice(0, q);
  if (!bare.startsWith('/')) throw bad('path', 'must start with "/"');
  let segments: string[];
  try {
    segments = bare.slice(1).split('/').map((s) => decodeURIComponent(s));
  } catch {
    throw bad('path', 'is not valid percent-encoding');
  }
  if (segments.length < 2) throw bad('path', 'must be /app/stream.flv, /app/stream.m3u8 or /app/stream.ts');
  const last = segments.pop()!;
  const { stream, ext } = bareStream(last);
  if (!ext || last.includes('?')) throw bad('path', 'must end in .flv, .m3u8 or .ts');
  const app = segments.join('/');
  checkPart('app', app, true);
  checkPart('stream', stream, false);
  return { app, stream, ext };
}
