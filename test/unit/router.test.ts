import { describe, expect, it } from 'vitest';
import { Value } from 'typebox/value';
import { newServer } from '../../src/core/server.js';
import { PoolBalancer } from '../../src/proxy/balancer.js';
import { roomUrl } from '../../src/proxy/directory.js';
import { findHeadEnd, parseRequestHead } from '../../src/proxy/http1/head.js';
import { pathSegment, queryParam, requestHost, requestPath, Router } from '../../src/proxy/router.js';
import { HttpPoolSchema, type HttpPoolConfig } from '../../src/proxy/schema.js';

const head = (text: string) => {
  const buf = Buffer.from(text.replaceAll('\n', '\r\n') + '\r\n');
  return parseRequestHead(buf, 0, findHeadEnd(buf, 0, buf.length, 16384, 431));
};
const pool = (name: string) => new PoolBalancer(name, Value.Default(HttpPoolSchema, {}) as HttpPoolConfig, 8, undefined);

describe('routing inputs', () => {
  it('reads host without port, path without query, query parameters and path segments', () => {
    expect(requestHost(head('GET / HTTP/1.1\nHost: Example.COM:8080\n'))).toBe('example.com');
    expect(requestHost(head('GET / HTTP/1.1\nHost: [::1]:8080\n'))).toBe('[::1]');
    expect(requestPath('/a/b?c=d')).toBe('/a/b');
    expect(requestPath('http://h:1/x/y?z')).toBe('/x/y');
    expect(requestPath('http://h:1')).toBe('/');
    expect(queryParam('/ws?roomId=r%201&x=2', 'roomId')).toBe('r 1');
    expect(queryParam('/ws?roomId=%E0%A4%A', 'roomId')).toBeUndefined();
    expect(queryParam('/ws?other=1', 'roomId')).toBeUndefined();
    expect(pathSegment('/rooms/abc/ws', 2)).toBe('abc');
    expect(pathSegment('/rooms/', 2)).toBeUndefined();
  });
});

describe('Router', () => {
  const web = pool('web');
  const media = pool('media');
  const api = pool('api');
  const pools = new Map([
    ['web', web],
    ['media', media],
    ['api', api],
  ]);

  it("without routes: seed 004's rule, WebSockets to media only while media has backends", () => {
    const r = new Router([], web, pools);
    const ws = head('GET /chat HTTP/1.1\nHost: a\nConnection: Upgrade\nUpgrade: websocket\nSec-WebSocket-Key: x\n');
    expect(r.route(ws).pool).toBe(web); // media has no backends yet
    media.upstreams.set('m1', {} as never);
    expect(r.route(ws).pool).toBe(media);
    expect(r.route(head('GET /chat HTTP/1.1\nHost: a\nSec-WebSocket-Key: x\n')).pool).toBe(media);
    expect(r.route(head('GET /chat HTTP/1.1\nHost: a\n')).pool).toBe(web);
    media.upstreams.clear();
  });

  it('first matching rule wins; every condition of a rule must hold', () => {
    const r = new Router(
      [
        { name: 'api-host', match: { host: ['api.example.com', '*.api.test'], pathPrefix: '/v1/' }, pool: 'api' },
        { name: 'beta', match: { header: { name: 'X-Beta', value: 'YES' } }, pool: 'media' },
        { name: 'rooms', match: { pathPrefix: '/rooms/' }, room: { pathSegment: 2 } },
      ],
      web,
      pools,
    );
    expect(r.route(head('GET /v1/x HTTP/1.1\nHost: api.example.com\n')).name).toBe('api-host');
    expect(r.route(head('GET /v1/x HTTP/1.1\nHost: eu.api.test\n')).name).toBe('api-host');
    expect(r.route(head('GET /v2/x HTTP/1.1\nHost: api.example.com\n')).name).toBe('default');
    expect(r.route(head('GET / HTTP/1.1\nHost: a\nx-beta: yes\n')).pool).toBe(media);
    expect(r.route(head('GET / HTTP/1.1\nHost: a\nx-beta: no\n')).pool).toBe(web);
    const room = r.route(head('GET /rooms/r-1/ws HTTP/1.1\nHost: a\n'));
    expect(room.name).toBe('rooms');
    expect(Router.roomId(room, '/rooms/r-1/ws', '/rooms/r-1/ws')).toBe('r-1');
    expect(Router.roomId(room, '/rooms/', '/rooms/')).toBeUndefined();
  });
});

describe('roomUrl: where a room is proxied to', () => {
  const server = (ws?: string) => ({ ...newServer({ id: 's', kind: 'sfu', serviceUrl: 'http://10.0.0.5:3000', capacity: 500, initialHealth: 'healthy', ...(ws ? { endpoints: { ws } } : {}) }, 0, 'e') });
  it('the registered WebSocket endpoint first, then the answer’s wsUrl, then the service URL', () => {
    expect(roomUrl(server('ws://10.0.0.5:4443'), { wsUrl: 'wss://sfu1.example.com/rooms/r' })).toBe('ws://10.0.0.5:4443');
    expect(roomUrl(server(), { wsUrl: 'wss://sfu1.example.com/rooms/r' })).toBe('wss://sfu1.example.com/rooms/r');
    expect(roomUrl(server(), { wsUrl: '' })).toBe('http://10.0.0.5:3000');
    expect(roomUrl(server(), undefined)).toBe('http://10.0.0.5:3000');
    expect(roomUrl(undefined, undefined)).toBeUndefined();
  });
});
