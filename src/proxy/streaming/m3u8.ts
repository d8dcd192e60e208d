/**
 * HLS playlist rewriting for the streaming HTTP proxy (seed 003, SRS proxy's SPBHID), pure: no I/O.
 *
 * A playlist fetched from an origin names its segments (and keys, init sections, renditions) by
 * URIs relative to the playlist or absolute on the origin. Players must fetch them through
 * Switchboard, carrying the HLS session id (`spbhid`) that maps them back to the stream's origin:
 * every URI line and every `URI="..."` attribute becomes an absolute path on Switchboard (the
 * origin's path, its query kept) with `spbhid=<id>` set.
 */

/** Longest playlist the proxy reads from an origin (bytes). */
export const MAX_PLAYLIST_BYTES = 1024 * 1024;

/** The query parameter carrying the HLS session id. */
export const SPBHID_PARAM = 'spbhid';

const SPBHID = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether a client-given HLS session id is acceptable (1-64 of A-Z a-z 0-9 _ -). */
export function validSpbhid(id: string): boolean {
  return SPBHID.test(id);
}

export interface RewriteResult {
  /** The rewritten playlist. */
  text: string;
  /**
   * The origin paths (no query) the playlist points at, in order, without duplicates: what a
   * request carrying no `spbhid` may later be matched by.
   */
  paths: string[];
}

/** A URI in a playlist → the absolute path (and query) on the origin; undefined to leave it alone. */
export function resolveUri(uri: string, playlistPath: string): { path: string; search: string } | undefined {
  const trimmed = uri.trim();
  if (trimmed === '') return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed);
  // data:, skd:// (FairPlay) and other non-HTTP schemes are not fetched through the proxy.
  if (scheme && !/^https?$/i.test(scheme[1]!)) return undefined;
  let url: URL;
  try {
    url = new URL(trimmed, new URL(playlistPath, 'http://origin.invalid'));
  } catch {
    return undefined;
  }
  return { path: url.pathname, search: url.search };
}

/** `path?query` with `spbhid` set (replacing any the origin's URI had). */
export function withSpbhid(path: string, search: string, spbhid: string): string {
  const params = new URLSearchParams(search);
  params.set(SPBHID_PARAM, spbhid);
  return `${path}?${params.toString()}`;
}

const URI_ATTR = /URI="([^"]*)"/g;

/**
 * Rewrites a playlist fetched from `playlistPath` (the origin path it was requested at, e.g.
 * `/live/stream.m3u8`) so every URI points at Switchboard with `spbhid`. Lines are kept otherwise
 * byte for byte (line endings included); URIs that are not HTTP (data:, skd://) are left as they are.
 */
export function rewritePlaylist(text: string, playlistPath: string, spbhid: string): RewriteResult {
  const paths: string[] = [];
  const seen = new Set<string>();
  const rewrite = (uri: string): string | undefined => {
    const target = resolveUri(uri, playlistPath);
    if (!target) return undefined;
    if (!seen.has(target.path)) {
      seen.add(target.path);
      paths.push(target.path);
    }
    return withSpbhid(target.path, target.search, spbhid);
  };
  const lines = text.split(/(\r?\n)/);
  for (let i = 0; i < lines.length; i += 2) {
    const line = lines[i]!;
    const content = line.trim();
    if (content === '') continue;
    if (content.startsWith('#')) {
      if (!content.startsWith('#EXT') || !line.includes('URI="')) continue;
      lines[i] = line.replace(URI_ATTR, (whole, uri: string) => {
        const out = rewrite(uri);
        return out === undefined ? whole : `URI="${out}"`;
      });
      continue;
    }
    const out = rewrite(content);
    if (out !== undefined) lines[i] = out;
  }
  return { text: lines.join(''), paths };
}

/** Whether a body looks like an HLS playlist (starts with `#EXTM3U`, a BOM allowed). */
export function isPlaylist(text: string): boolean {
  return /^\uFEFF?#EXTM3U/.test(text);
}
