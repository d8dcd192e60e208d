import { describe, expect, it } from 'vitest';
import { isPlaylist, resolveUri, rewritePlaylist, validSpbhid, withSpbhid } from '../../src/proxy/streaming/m3u8.js';
import { checkResourcePath, originHttpAddress } from '../../src/proxy/streaming/http.js';
import { AppError } from '../../src/errors.js';

const NGINX = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-TARGETDURATION:1
#EXTINF:1.000,
stream-7.ts
#EXTINF:1.000,
stream-8.ts
`;

describe('rewritePlaylist', () => {
  it('points relative segment lines at Switchboard with spbhid, and lists their paths', () => {
    const out = rewritePlaylist(NGINX, '/live/stream.m3u8', 'abc');
    expect(out.text).toBe(NGINX.replace('stream-7.ts', '/live/stream-7.ts?spbhid=abc').replace('stream-8.ts', '/live/stream-8.ts?spbhid=abc'));
    expect(out.paths).toEqual(['/live/stream-7.ts', '/live/stream-8.ts']);
  });

  it('keeps the origin query, replaces an old spbhid, and strips the host of absolute HTTP URIs', () => {
    const text = '#EXTM3U\n#EXTINF:2,\nhttp://10.0.0.5:8080/live/a/seg-1.ts?token=x&spbhid=old\n#EXTINF:2,\n/other/seg-2.ts\n#EXTINF:2,\n../up/seg-3.ts\n';
    const out = rewritePlaylist(text, '/live/a/index.m3u8', 'new');
    expect(out.text.split('\n')).toEqual([
      '#EXTM3U',
      '#EXTINF:2,',
      '/live/a/seg-1.ts?token=x&spbhid=new',
      '#EXTINF:2,',
      '/other/seg-2.ts?spbhid=new',
      '#EXTINF:2,',
      '/live/up/seg-3.ts?spbhid=new',
      '',
    ]);
    expect(out.paths).toEqual(['/live/a/seg-1.ts', '/other/seg-2.ts', '/live/up/seg-3.ts']);
  });

  it('rewrites URI attributes of EXT-X-KEY, EXT-X-MAP and EXT-X-MEDIA, and variant lines', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="audio/en.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO="aud"',
      'low/index.m3u8',
      '#EXT-X-KEY:METHOD=AES-128,URI="keys/k1.key",IV=0x01',
      '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://fairplay-key",KEYFORMAT="com.apple.streamingkeydelivery"',
      '#EXT-X-MAP:URI="init.mp4"',
      '#EXTINF:1,',
      'seg0.m4s',
    ].join('\r\n');
    const out = rewritePlaylist(text, '/vod/show/master.m3u8', 'S1');
    const lines = out.text.split('\r\n');
    expect(lines[1]).toBe('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="/vod/show/audio/en.m3u8?spbhid=S1"');
    expect(lines[3]).toBe('/vod/show/low/index.m3u8?spbhid=S1');
    expect(lines[4]).toBe('#EXT-X-KEY:METHOD=AES-128,URI="/vod/show/keys/k1.key?spbhid=S1",IV=0x01');
    expect(lines[5]).toBe('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://fairplay-key",KEYFORMAT="com.apple.streamingkeydelivery"');
    expect(lines[6]).toBe('#EXT-X-MAP:URI="/vod/show/init.mp4?spbhid=S1"');
    expect(lines[8]).toBe('/vod/show/seg0.m4s?spbhid=S1');
    expect(out.paths).toEqual(['/vod/show/audio/en.m3u8', '/vod/show/low/index.m3u8', '/vod/show/keys/k1.key', '/vod/show/init.mp4', '/vod/show/seg0.m4s']);
  });

  it('leaves comments, tags without URI, blank lines and data: URIs alone', () => {
    const text = '#EXTM3U\n# a comment URI="x.ts"\n\n#EXT-X-ENDLIST\ndata:video/mp2t;base64,AAAA\n';
    const out = rewritePlaylist(text, '/live/s.m3u8', 'z');
    expect(out.text).toBe(text);
    expect(out.paths).toEqual([]);
  });

  it('lists a path once when segments repeat', () => {
    const out = rewritePlaylist('#EXTM3U\na.ts\na.ts?x=1\n', '/live/s.m3u8', 'z');
    expect(out.paths).toEqual(['/live/a.ts']);
    expect(out.text).toBe('#EXTM3U\n/live/a.ts?spbhid=z\n/live/a.ts?x=1&spbhid=z\n');
  });

  it('cannot climb above the root', () => {
    expect(resolveUri('../../../../etc/passwd', '/live/s.m3u8')).toEqual({ path: '/etc/passwd', search: '' });
  });
});

describe('helpers', () => {
  it('validSpbhid accepts short URL-safe ids only', () => {
    expect(validSpbhid('aZ09_-')).toBe(true);
    expect(validSpbhid('')).toBe(false);
    expect(validSpbhid('a'.repeat(65))).toBe(false);
    expect(validSpbhid('a b')).toBe(false);
    expect(validSpbhid('a&b=c')).toBe(false);
  });

  it('withSpbhid appends or replaces', () => {
    expect(withSpbhid('/a.ts', '', 'x')).toBe('/a.ts?spbhid=x');
    expect(withSpbhid('/a.ts', '?spbhid=y&k=1', 'x')).toBe('/a.ts?spbhid=x&k=1');
  });

  it('isPlaylist', () => {
    expect(isPlaylist('#EXTM3U\n')).toBe(true);
    expect(isPlaylist('\uFEFF#EXTM3U\n')).toBe(true);
    expect(isPlaylist('<html>')).toBe(false);
  });

  it('checkResourcePath refuses traversal, empty segments and control characters with 400 path', () => {
    expect(checkResourcePath('/live/a-1.ts')).toBe('/live/a-1.ts');
    for (const p of ['', 'live/a.ts', '/live/../a.ts', '/live//a.ts', '/live/%2e%2e/a.ts', '/live/%0a.ts', '/live/a%2fb.ts', '/live/%zz.ts']) {
      let err: unknown;
      try {
        checkResourcePath(p);
      } catch (e) {
        err = e;
      }
      expect(err, p).toBeInstanceOf(AppError);
      expect((err as AppError).statusCode).toBe(400);
      expect((err as AppError).details.field).toBe('path');
    }
  });

  it('originHttpAddress uses the first http listen entry, its own host or the origin host', () => {
    expect(originHttpAddress({ endpoints: { host: '10.0.0.1', http: '8080,9090' } })).toEqual({ host: '10.0.0.1', port: 8080 });
    expect(originHttpAddress({ endpoints: { host: '10.0.0.1', http: 'tcp://:8081' } })).toEqual({ host: '10.0.0.1', port: 8081 });
    expect(originHttpAddress({ endpoints: { host: '10.0.0.1', http: '10.0.0.9:8082' } })).toEqual({ host: '10.0.0.9', port: 8082 });
    expect(originHttpAddress({ endpoints: { host: '10.0.0.1', rtmp: '1935' } })).toBeUndefined();
  });
});
