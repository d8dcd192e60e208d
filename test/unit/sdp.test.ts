import { describe, expect, it } from 'vitest';
import { iceUfrag, iceUfrags, looksLikeSdp, parseCandidate, rewriteCandidates } from '../../src/proxy/streaming/sdp.js';

/** Issue 16 item 5: the SDP handling of the WHIP/WHEP proxy. */

const crlf = (lines: string[]) => lines.join('\r\n') + '\r\n';

const SRS_ANSWER = crlf([
  'v=0',
  'o=SRS/7.0.0 94012496 2 IN IP4 0.0.0.0',
  's=SRSPublishSession',
  't=0 0',
  'a=ice-lite',
  'a=group:BUNDLE 0 1',
  'a=msid-semantic: WMS live/livestream',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:3m9d41f0',
  'a=ice-pwd:8p4x7w2n37rr0f15v4d7d07i51d67c31',
  'a=fingerprint:sha-256 36:54:C3:B8:E9:6A:5C:4B',
  'a=setup:passive',
  'a=mid:0',
  'a=recvonly',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ host generation 0',
  'a=candidate:1 1 udp 2130706431 192.168.1.7 8000 typ host generation 0',
  'a=candidate:2 1 tcp 1694498815 10.0.0.7 8000 typ host tcptype passive',
  'm=video 9 UDP/TLS/RTP/SAVPF 106',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:3m9d41f0',
  'a=ice-pwd:8p4x7w2n37rr0f15v4d7d07i51d67c31',
  'a=mid:1',
  'a=recvonly',
  'a=candidate:0 1 udp 2130706431 10.0.0.7 8000 typ srflx raddr 172.17.0.2 rport 8000 generation 0 network-id 1',
]);

describe('iceUfrag', () => {
  it('reads the ufrag at media level, once per distinct value', () => {
    expect(iceUfrag(SRS_ANSWER)).toBe('3m9d41f0');
    expect(iceUfrags(SRS_ANSWER)).toEqual(['3m9d41f0']);
  });

  it('reads a session-level ufrag, and every distinct one of unbundled sections', () => {
    const sdp = crlf(['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=ice-ufrag:sess', 'm=audio 9 UDP/TLS/RTP/SAVPF 0', 'a=ice-ufrag:media2']);
    expect(iceUfrag(sdp)).toBe('sess');
    expect(iceUfrags(sdp)).toEqual(['sess', 'media2']);
  });

  it('is undefined without one, or with an empty one', () => {
    expect(iceUfrag(crlf(['v=0', 'm=audio 9 RTP/AVP 0']))).toBeUndefined();
    expect(iceUfrag(crlf(['v=0', 'a=ice-ufrag:', 'a=ice-ufrag: ']))).toBeUndefined();
    expect(iceUfrag('')).toBeUndefined();
  });
});

describe('rewriteCandidates', () => {
  const out = rewriteCandidates(SRS_ANSWER, { host: '203.0.113.5', port: 18000 });
  const lines = out.split('\r\n');

  it('points every UDP candidate at Switchboard as a host candidate, keeping foundation, component, priority, extensions', () => {
    const candidates = lines.filter((l) => l.startsWith('a=candidate:'));
    expect(candidates).toEqual([
      'a=candidate:0 1 udp 2130706431 203.0.113.5 18000 typ host generation 0',
      // the second audio candidate would be identical: dropped; the tcp one: dropped
      'a=candidate:0 1 udp 2130706431 203.0.113.5 18000 typ host generation 0', // video section (raddr/rport/network-id dropped)
    ]);
    expect(out).not.toContain('10.0.0.7');
    expect(out).not.toContain('192.168.1.7');
    expect(out).not.toContain('172.17.0.2');
    expect(out).not.toMatch(/ tcp /);
  });

  it('keeps every other line byte for byte, with CRLF endings', () => {
    const other = (s: string) => s.split('\r\n').filter((l) => !l.startsWith('a=candidate:'));
    expect(other(out)).toEqual(other(SRS_ANSWER));
    expect(out.endsWith('\r\n')).toBe(true);
    expect(out.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it('is the identity on an SDP without candidates, and keeps bare LF and a missing last newline', () => {
    const sdp = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\ns=-\r\nt=0 0';
    expect(rewriteCandidates(sdp, { host: 'sb.example.com', port: 1 })).toBe(sdp);
    const mixed = 'v=0\na=candidate:7 1 UDP 5 1.2.3.4 9 typ host\nm=audio 9 X 0';
    expect(rewriteCandidates(mixed, { host: '::1', port: 18000 })).toBe('v=0\na=candidate:7 1 UDP 5 ::1 18000 typ host\nm=audio 9 X 0');
  });

  it('keeps one candidate per component per section (RTCP component 2 too) and drops malformed lines', () => {
    const sdp = crlf([
      'v=0',
      'm=audio 9 UDP/TLS/RTP/SAVP 0',
      'a=candidate:a 1 udp 100 10.0.0.1 1000 typ host',
      'a=candidate:b 2 udp 99 10.0.0.1 1001 typ host',
      'a=candidate:garbage',
      'a=candidate:c 1 udp notanumber 10.0.0.1 1000 typ host',
      'a=end-of-candidates',
    ]);
    expect(rewriteCandidates(sdp, { host: '127.0.0.1', port: 18000 })).toBe(
      crlf(['v=0', 'm=audio 9 UDP/TLS/RTP/SAVP 0', 'a=candidate:a 1 udp 100 127.0.0.1 18000 typ host', 'a=candidate:b 2 udp 99 127.0.0.1 18000 typ host', 'a=end-of-candidates']),
    );
  });

  it('refuses a bad target', () => {
    expect(() => rewriteCandidates('', { host: 'a b', port: 1 })).toThrow(RangeError);
    expect(() => rewriteCandidates('', { host: 'x', port: 0 })).toThrow(RangeError);
    expect(() => rewriteCandidates('', { host: 'x', port: 65536 })).toThrow(RangeError);
  });
});

describe('parseCandidate / looksLikeSdp', () => {
  it('parses the fields and extensions', () => {
    expect(parseCandidate('1 1 udp 2130706431 10.0.0.7 8000 typ srflx raddr 1.1.1.1 rport 9 generation 0')).toEqual({
      foundation: '1',
      component: '1',
      transport: 'udp',
      priority: '2130706431',
      address: '10.0.0.7',
      port: '8000',
      type: 'srflx',
      extensions: ['raddr', '1.1.1.1', 'rport', '9', 'generation', '0'],
    });
    expect(parseCandidate('1 1 udp 1 10.0.0.7 8000 host')).toBeUndefined();
    expect(parseCandidate('')).toBeUndefined();
  });

  it('recognises an SDP body', () => {
    expect(looksLikeSdp(SRS_ANSWER)).toBe(true);
    expect(looksLikeSdp('v=0\nm=audio 9 X 0\n')).toBe(true);
    expect(looksLikeSdp('{"sdp":"v=0"}')).toBe(false);
    expect(looksLikeSdp('v=0\r\ns=-\r\n')).toBe(false);
  });
});
