import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaClient } from '../../src/pools/rooms/media-client.js';

interface Seen {
  method: string;
  url: string;
  body: string;
  socket: IncomingMessage['socket'];
}

async function mediaServer(answer: (seen: Seen) => [number, string]): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', body, socket: req.socket };
      seen.push(s);
      const [status, text] = answer(s);
      res.writeHead(status, { 'content-type': 'application/json' }).end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe('MediaClient (room creation on a media server)', () => {
  const servers: Server[] = [];
  const clients: MediaClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('POSTs {serviceUrl}/rooms/{roomId} under the serviceUrl path, reusing one kept-open connection', async () => {
    const m = await mediaServer((s) => [200, JSON.stringify({ protocol: 'p', wsUrl: 'ws://x', roomId: decodeURIComponent(s.url.split('/').pop()!) })]);
    servers.push(m.server);
    const client = new MediaClient({ timeoutMs: 2000, connections: 1 });
    clients.push(client);
    const a = await client.createRoom(`${m.url}/api/v1/`, 'room one', { maxPeerCount: 3, eventNotificationUri: 'http://n/' });
    const b = await client.createRoom(`${m.url}/api/v1/`, 'r2', { maxPeerCount: 2 });
    expect(a).toEqual({ protocol: 'p', wsUrl: 'ws://x', roomId: 'room one' });
    expect(b.roomId).toBe('r2');
    expect(m.seen.map((s) => `${s.method} ${s.url}`)).toEqual(['POST /api/v1/rooms/room%20one', 'POST /api/v1/rooms/r2']);
    expect(JSON.parse(m.seen[0]!.body)).toEqual({ maxPeerCount: 3, eventNotificationUri: 'http://n/' });
    expect(m.seen[0]!.socket).toBe(m.seen[1]!.socket);
  });

  it('rejects non-2xx answers and bodies that are not a JSON object, with a reason', async () => {
    const answers: [number, string][] = [[500, '{}'], [200, 'not json'], [200, '[1]']];
    const m = await mediaServer(() => answers.shift()!);
    servers.push(m.server);
    const client = new MediaClient({ timeoutMs: 2000 });
    clients.push(client);
    await expect(client.createRoom(m.url, 'a', { maxPeerCount: 2 })).rejects.toThrow('HTTP 500');
    await expect(client.createRoom(m.url, 'b', { maxPeerCount: 2 })).rejects.toThrow('not JSON');
    await expect(client.createRoom(m.url, 'c', { maxPeerCount: 2 })).rejects.toThrow('not an object');
  });

  it('prune closes the connections of media servers no longer registered', async () => {
    const m = await mediaServer(() => [200, '{}']);
    servers.push(m.server);
    const client = new MediaClient({ timeoutMs: 2000 });
    clients.push(client);
    await client.createRoom(m.url, 'a', { maxPeerCount: 2 });
    const socket = m.seen[0]!.socket;
    expect(socket.destroyed).toBe(false);
    client.prune([m.url]);
    await new Promise((r) => setTimeout(r, 50));
    expect(socket.destroyed).toBe(false);
    client.prune([]);
    for (let i = 0; i < 50 && !socket.destroyed; i++) await new Promise((r) => setTimeout(r, 20));
    expect(socket.destroyed).toBe(true);
    // A later call opens a new pool.
    await client.createRoom(m.url, 'b', { maxPeerCount: 2 });
    expect(m.seen[1]!.socket).not.toBe(socket);
  });
});
