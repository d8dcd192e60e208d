import { describe, expect, it } from 'vitest';
import { streamKey, tcUrlApp, tcUrlHost } from '../../src/proxy/rtmp/key.js';

describe('RTMP stream key', () => {
  it('uses __defaultVhost__ for IPs and dotless hosts', () => {
    expect(streamKey('rtmp://127.0.0.1:11935/live', 'live', 'cam1')).toBe('__defaultVhost__/live/cam1');
    expect(streamKey('rtmp://localhost/live', 'live', 'cam1')).toBe('__defaultVhost__/live/cam1');
    expect(streamKey('rtmp://[::1]:1935/live', 'live', 'cam1')).toBe('__defaultVhost__/live/cam1');
    expect(streamKey(undefined, 'live', 'cam1')).toBe('__defaultVhost__/live/cam1');
  });

  it('uses a dotted host name as vhost', () => {
    expect(streamKey('rtmp://Media.Example.com:1935/live', 'live', 'cam1')).toBe('media.example.com/live/cam1');
  });

  it('drops queries from app and stream; vhost= / domain= override', () => {
    expect(streamKey('rtmp://127.0.0.1/live?token=1', 'live?token=1', 'cam1?key=abc&x=1')).toBe('__defaultVhost__/live/cam1');
    expect(streamKey('rtmp://127.0.0.1/live', 'live', 'cam1?vhost=v.example.com')).toBe('v.example.com/live/cam1');
    expect(streamKey('rtmp://127.0.0.1/live?domain=d.example.com', 'live?domain=d.example.com', 'cam1')).toBe('d.example.com/live/cam1');
  });

  it('falls back to the tcUrl path for a missing app', () => {
    expect(streamKey('rtmp://127.0.0.1/live/sub?x=1', undefined, 's')).toBe('__defaultVhost__/live/sub/s');
    expect(tcUrlApp('rtmp://h:1/app')).toBe('app');
    expect(tcUrlHost('rtmp://user@H.example:1/app')).toBe('h.example');
    expect(tcUrlHost('not a url')).toBe('');
  });
});
