/**
 * The little SDP handling the WebRTC proxy needs (seed 003: WHIP/WHEP through SRS's proxy), pure:
 * no I/O. Lines are split on LF with an optional CR before it, and every line keeps its own line
 * ending, so whatever is not rewritten stays byte-identical (SDP uses CRLF; a bare LF survives too).
 */

/** One `a=candidate` line, parsed (RFC 8839 §5.1). */
export interface SdpCandidate {
  foundation: string;
  component: string;
  transport: string;
  priority: string;
  address: string;
  port: string;
  type: string;
  /** Everything after `typ <type>` (raddr/rport, generation, ufrag, network-id, ...), as tokens. */
  extensions: string[];
}

const CANDIDATE_PREFIX = 'a=candidate:';
const UFRAG_PREFIX = 'a=ice-ufrag:';
/** Extension tokens (name value pairs) dropped from a rewritten candidate: they describe the origin's network. */
const DROPPED_EXTENSIONS = new Set(['raddr', 'rport', 'tcptype', 'network-id', 'network-cost']);

/** Splits an SDP into [line, ending] pairs; the last line may have no ending. */
function lines(sdp: string): [string, string][] {
  const out: [string, string][] = [];
  let at = 0;
  while (at < sdp.length) {
    const lf = sdp.indexOf('\n', at);
    if (lf === -1) {
      out.push([sdp.slice(at), '']);
      break;
    }
    const cr = lf > at && sdp.charCodeAt(lf - 1) === 13;
    out.push([sdp.slice(at, cr ? lf - 1 : lf), cr ? '\r\n' : '\n']);
    at = lf + 1;
  }
  return out;
}

/** Every distinct `a=ice-ufrag` value, session level or media level, in order of appearance. */
export function iceUfrags(sdp: string): string[] {
  const found: string[] = [];
  for (const [line] of lines(sdp)) {
    if (!line.startsWith(UFRAG_PREFIX)) continue;
    const ufrag = line.slice(UFRAG_PREFIX.length).trim();
    if (ufrag !== '' && !found.includes(ufrag)) found.push(ufrag);
  }
  return found;
}

/** The first `a=ice-ufrag` (session or media level); undefined when there is none. */
export function iceUfrag(sdp: string): string | undefined {
  return iceUfrags(sdp)[0];
}

/** Parses the value of an `a=candidate:` line (without the prefix); undefined when malformed. */
export function parseCandidate(value: string): SdpCandidate | undefined {
  const t = value.trim().split(/\s+/);
  if (t.length < 8 || t[6]!.toLowerCase() !== 'typ') return undefined;
  const [foundation, component, transport, priority, address, port, , type] = t as [string, string, string, string, string, string, string, string];
  if (!/^\d+$/.test(component) || !/^\d+$/.test(priority) || !/^\d+$/.test(port)) return undefined;
  return { foundation, component, transport, priority, address, port, type, extensions: t.slice(8) };
}

export interface RewriteTarget {
  /** The address clients reach Switchboard's WebRTC UDP port at (an IP, or a name for mDNS-less clients). */
  host: string;
  /** Switchboard's WebRTC UDP port (PROXY_WEBRTC_SERVER). */
  port: number;
}

/**
 * Rewrites an SDP answer's candidates to Switchboard's UDP address, for clients to send their ICE,
 * DTLS and SRTP there (the UDP proxy routes them to the origin by ICE ufrag):
 *
 * - every UDP `a=candidate` becomes `<foundation> <component> udp <priority> <host> <port> typ host`
 *   with its extensions kept (generation, ufrag, ...) except those describing the origin's network
 *   (raddr/rport, network-id, network-cost);
 * - TCP candidates (ICE-TCP) are dropped: the proxy relays UDP only, and a TCP candidate would name
 *   the origin's address directly, which clients must not need to reach;
 * - once a component has a candidate, later ones of the same component in the same media section
 *   would be identical after the rewrite and are dropped;
 * - malformed candidate lines are dropped too (they could only name the origin);
 * - every other line is kept byte for byte, line endings included.
 */
export function rewriteCandidates(sdp: string, target: RewriteTarget): string {
  if (!/^[A-Za-z0-9.:_-]+$/.test(target.host)) throw new RangeError('host: must be an IP address or host name');
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) throw new RangeError('port: must be 1..65535');
  let out = '';
  let seen = new Set<string>();
  for (const [line, ending] of lines(sdp)) {
    if (line.startsWith('m=')) seen = new Set();
    if (!line.startsWith(CANDIDATE_PREFIX)) {
      out += line + ending;
      continue;
    }
    const c = parseCandidate(line.slice(CANDIDATE_PREFIX.length));
    if (!c || c.transport.toLowerCase() !== 'udp' || seen.has(c.component)) continue;
    seen.add(c.component);
    const ext: string[] = [];
    for (let i = 0; i + 1 < c.extensions.length; i += 2) {
      if (!DROPPED_EXTENSIONS.has(c.extensions[i]!.toLowerCase())) ext.push(c.extensions[i]!, c.extensions[i + 1]!);
    }
    const fields = [c.foundation, c.component, c.transport, c.priority, target.host, String(target.port), 'typ', 'host', ...ext];
    out += CANDIDATE_PREFIX + fields.join(' ') + ending;
  }
  return out;
}

/** Whether a body looks like an SDP session description: `v=0` first, and at least one `m=` line. */
export function looksLikeSdp(body: string): boolean {
  return /^v=0\r?\n/.test(body) && /\r?\nm=/.test(body);
}
