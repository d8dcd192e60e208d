/**
 * Sticky sessions by an inserted cookie: HAProxy's `cookie NAME insert indirect nocache`, as pure
 * helpers over header strings.
 *
 * - insert: when the client has no valid cookie, the proxy picks a backend with its usual picker
 *   and adds `Set-Cookie: stickySetCookie(NAME, cookieValueFor(id))` to the response.
 * - indirect: the cookie is the proxy's own; `stripStickyCookie` removes it from the request's
 *   Cookie header before it goes to the backend.
 * - nocache: the response carrying the inserted cookie gets `Cache-Control: NOCACHE_HEADER`.
 *
 * The caller's job (redispatch, HAProxy `option redispatch`): when the pinned backend is unknown,
 * gone, ejected, at weight 0 or full, pick another one and insert a new cookie, as when the
 * client had none. A cookie value is client input: `serverIdFromCookie` never throws, and its
 * answer must be looked up among the configured backends, never trusted as an address.
 */

/** HAProxy `nocache`: shared caches must never hand one client's sticky cookie to another. */
export const NOCACHE_HEADER = 'private';

export interface StickyCookieOptions {
  path?: string;
  secure?: boolean;
  httpOnly?: boolean;
  sameSite?: 'Lax' | 'Strict' | 'None';
  maxAgeSeconds?: number;
}

/** The value of cookie `name` in a Cookie header (the first if repeated), unquoted; undefined when absent. */
export function readStickyCookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}

/** The Cookie header without cookie `name` (every occurrence); undefined when nothing remains. */
export function stripStickyCookie(cookieHeader: string, name: string): string | undefined {
  const kept: string[] = [];
  for (const part of cookieHeader.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq >= 0 && p.slice(0, eq).trim() === name) continue;
    kept.push(p);
  }
  return kept.length > 0 ? kept.join('; ') : undefined;
}

// RFC 6265: a cookie name is an HTTP token; a value is cookie-octets; attribute values no CTL or ';'.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const COOKIE_VALUE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*$/;
const ATTRIBUTE_VALUE = /^[\x20-\x3A\x3C-\x7E]+$/;

/**
 * The Set-Cookie value to insert: `NAME=value; Path=/; HttpOnly` by default, a session cookie
 * unless maxAgeSeconds is given. SameSite=None implies Secure (browsers drop it otherwise). Throws
 * RangeError on a name, value or path that would break the header: those come from configuration
 * and cookieValueFor, never from the client.
 */
export function stickySetCookie(name: string, value: string, opts: StickyCookieOptions = {}): string {
  if (!TOKEN.test(name)) throw new RangeError(`invalid cookie name: ${JSON.stringify(name)}`);
  if (!COOKIE_VALUE.test(value)) throw new RangeError(`invalid cookie value: ${JSON.stringify(value)}`);
  const path = opts.path ?? '/';
  if (!ATTRIBUTE_VALUE.test(path)) throw new RangeError(`invalid cookie path: ${JSON.stringify(path)}`);
  let out = `${name}=${value}; Path=${path}`;
  if (opts.maxAgeSeconds !== undefined && Number.isFinite(opts.maxAgeSeconds)) out += `; Max-Age=${Math.max(0, Math.floor(opts.maxAgeSeconds))}`;
  if (opts.httpOnly ?? true) out += '; HttpOnly';
  if (opts.secure || opts.sameSite === 'None') out += '; Secure';
  if (opts.sameSite) out += `; SameSite=${opts.sameSite}`;
  return out;
}

/**
 * The cookie value naming a backend: its id, percent-encoded (the output is cookie-safe). An id
 * with a lone UTF-16 surrogate (the API refuses those, core/well-formed.ts) is encoded with U+FFFD
 * in its place rather than throwing, and so does not round-trip.
 */
export function cookieValueFor(serverId: string): string {
  try {
    return encodeURIComponent(serverId);
  } catch {
    return encodeURIComponent(serverId.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));
  }
}

/** The backend id in a cookie value; undefined for an empty or malformed value (never throws). */
export function serverIdFromCookie(value: string | undefined): string | undefined {
  if (!value) return undefined;
  try {
    return decodeURIComponent(value) || undefined;
  } catch {
    return undefined;
  }
}
