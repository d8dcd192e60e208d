import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { DEFAULT_VHOST, parseTcUrl, streamFromHttpPath, streamKey, vhostOf } from '../../src/pools/origins/stream-key.js';

function refused(fn: () => unknown, field: string): void {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(AppError);
  expect(error).toMatchObject({ statusCode: 400, details: { field } });
  expect((error as Error).message).toContain(field);
}

describe('vhostOf (SRS rule)', () => {
  it('is __defaultVhost__ for no host, IP literals and names without a dot', () => {
    for (const h of [undefined, '', '127.0.0.1', '127.0.0.1:1935', '::1', '[::1]', '[2001:db8::1]:8080', 'localhost', 'localhost:1935', 'origin', '__defaultVhost__']) {
      expect(vhostOf(h)).toBe(DEFAULT_VHOST);
    }
  });
  it('is the host name, lower case, without its port or trailing dot', () => {
    expect(vhostOf('Live.Example.COM')).toBe('live.example.com');
    expect(vhostOf('live.example.com:1935')).toBe('live.example.com');
    expect(vhostOf('live.example.com.')).toBe('live.example.com');
  });
  it('refuses hosts with odd characters', () => {
    refused(() => vhostOf('a.b/c'), 'vhost');
    refused(() => vhostOf('a.b\u0000'), 'vhost');
    refused(() => vhostOf('a..b'), 'vhost');
  });
});

describe('streamKey', () => {
  it('is vhost/app/stream', () => {
    expect(streamKey(undefined, 'live', 'livestream')).toBe('__defaultVhost__/live/livestream');
    expect(streamKey('127.0.0.1:8080', 'live', 'livestream')).toBe('__defaultVhost__/live/livestream');
    expect(streamKey('srs.example.com', 'live', 'livestream')).toBe('srs.example.com/live/livestream');
    expect(streamKey('srs.example.com', '/live/sub/', 'one')).toBe('srs.example.com/live/sub/one');
  });
  it('strips .flv/.m3u8/.ts and ?query from the stream, so every protocol names one stream', () => {
    const keys = ['livestream', 'livestream.flv', 'livestream.m3u8', 'livestream.ts', 'livestream?secret=1', 'livestream.flv?token=x&a=b'].map((s) => streamKey(undefined, 'live', s));
    expect(new Set(keys)).toEqual(new Set(['__defaultVhost__/live/livestream']));
    expect(streamKey(undefined, 'live', 'livestream.mp4')).toBe('__defaultVhost__/live/livestream.mp4');
    expect(streamKey(undefined, 'live', 'a.flv.flv')).toBe('__defaultVhost__/live/a.flv');
  });
  it('refuses empty parts, "..", control characters, "/" in the stream, long parts', () => {
    refused(() => streamKey(undefined, '', 's'), 'app');
    refused(() => streamKey(undefined, '/', 's'), 'app');
    refused(() => streamKey(undefined, 'live', ''), 'stream');
    refused(() => streamKey(undefined, 'live', '.flv'), 'stream');
    refused(() => streamKey(undefined, 'live', '?x=1'), 'stream');
    refused(() => streamKey(undefined, '..', 's'), 'app');
    refused(() => streamKey(undefined, 'live/../x', 's'), 'app');
    refused(() => streamKey(undefined, 'live//x', 's'), 'app');
    refused(() => streamKey(undefined, 'live', '..'), 'stream');
    refused(() => streamKey(undefined, 'live', 'a\nb'), 'stream');
    refused(() => streamKey(undefined, 'li\u007fve', 's'), 'app');
    refused(() => streamKey(undefined, 'live', 'a/b'), 'stream');
    refused(() => streamKey(undefined, 'live', 'x'.repeat(257)), 'stream');
  });
});

describe('parseTcUrl', () => {
  it('takes the host and the app', () => {
    expect(parseTcUrl('rtmp://127.0.0.1/live')).toEqual({ host: '127.0.0.1', app: 'live' });
    expect(parseTcUrl('rtmp://srs.example.com:1935/live/')).toEqual({ host: 'srs.example.com:1935', app: 'live' });
    expect(parseTcUrl('RTMPS://[::1]:443/live/sub')).toEqual({ host: '[::1]:443', app: 'live/sub' });
    expect(parseTcUrl('rtmp://user@host.example.com/live')).toEqual({ host: 'host.example.com', app: 'live' });
  });
  it('lets ?vhost= name the vhost, as SRS does', () => {
    const { host, app } = parseTcUrl('rtmp://127.0.0.1:1935/live?vhost=srs.example.com');
    expect({ host, app }).toEqual({ host: 'srs.example.com', app: 'live' });
    expect(streamKey(host, app, 'livestream')).toBe('srs.example.com/live/livestream');
    expect(parseTcUrl('rtmp://127.0.0.1/live?other=1').host).toBe('127.0.0.1');
  });
  it('refuses what is not an RTMP URL with a host and an app', () => {
    for (const bad of ['', 'http://x/live', 'rtmp://', 'rtmp:///live', 'rtmp://host', 'rtmp://host/', 'rtmp://host/../x', 'rtmp://host/li\u0001ve', 'x'.repeat(3000)]) {
      refused(() => parseTcUrl(bad), bad.includes('..') ? 'app' : 'tcUrl');
    }
  });
});

describe('streamFromHttpPath', () => {
  it('parses /app/stream.(flv|m3u8|ts)', () => {
    expect(streamFromHttpPath('/live/livestream.flv')).toEqual({ app: 'live', stream: 'livestream', ext: 'flv' });
    expect(streamFromHttpPath('/live/livestream.m3u8?spbhid=abc')).toEqual({ app: 'live', stream: 'livestream', ext: 'm3u8' });
    expect(streamFromHttpPath('/live/sub/livestream-12.ts')).toEqual({ app: 'live/sub', stream: 'livestream-12', ext: 'ts' });
    expect(streamFromHttpPath('/live/my%20stream.flv')).toEqual({ app: 'live', stream: 'my stream', ext: 'flv' });
  });
  it('agrees with streamKey', () => {
    const { app, stream } = streamFromHttpPath('/live/livestream.flv?token=1');
    expect(streamKey('127.0.0.1:8080', app, stream)).toBe(streamKey(undefined, 'live', 'livestream'));
  });
  it('refuses other paths, "..", encoded slashes and control characters', () => {
    for (const p of ['', 'live/a.flv', '/a.flv', '/live/a.mp4', '/live/a', '/live/.flv', '/live/a%3F.flv', '/live/%E0%A4%A.flv', '//a.flv']) refused(() => streamFromHttpPath(p), p === '//a.flv' ? 'app' : p === '/live/.flv' ? 'stream' : 'path');
    refused(() => streamFromHttpPath('/../a.flv'), 'app');
    refused(() => streamFromHttpPath('/live/%2E%2E.flv'), 'stream');
    refused(() => streamFromHttpPath('/live/a%2Fb.flv'), 'stream');
    refused(() => streamFromHttpPath('/live/a%0Ab.flv'), 'stream');
  });
});
