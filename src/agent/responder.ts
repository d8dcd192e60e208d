import { BlockList, createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { parseCidr } from '../security/network-policy.js';
import { replyLine, type ReplyOptions } from './reply.js';
import type { LoadSource } from './types.js';

/**
 * The agent-check responder: a TCP server that answers each connection with one line in
 * HAProxy's agent syntax (see reply.ts) and closes it — what the seed's xinetd service and
 * script do. It answers from the last collected state and never waits on a collector.
 *
 * `peers` is the seed's xinetd `only_from`: addresses and CIDR networks; a connection from
 * anywhere else is closed without an answer. Unset or empty: anyone may ask.
 */
export interface ResponderOptions {
  host: string;
  port: number;
  peers?: readonly string[];
  reply: Omit<ReplyOptions, 'announceReady'>;
  /** Whether replies carry `ready` now (see reply.ts); evaluated per connection. */
  announceReady?: () => boolean;
  logger?: Logger;
}

export interface Responder {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/** A BlockList of the allowed peers. Throws naming the first entry that is not an address or network. */
export function peersList(peers: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of peers) {
    const { address, prefix, family } = parseCidr(entry);
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/** Whether `remote` (as a socket reports it, IPv4-mapped IPv6 included) may ask. */
export function peerAllowed(list: BlockList | undefined, remote: string | undefined): boolean {
  if (!list) return true;
  if (!remote) return false;
  const v = isIP(remote);
  if (v === 0) return false;
  // BlockList matches ::ffff:a.b.c.d against IPv4 rules.
  return list.check(remote, v === 4 ? 'ipv4' : 'ipv6');
}

export async function startResponder(source: LoadSource, opts: ResponderOptions): Promise<Responder> {
  const allowed = opts.peers && opts.peers.length > 0 ? peersList(opts.peers) : undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A peer that resets before the answer is nothing to report.
    socket.on('error', () => undefined);
    if (!peerAllowed(allowed, socket.remoteAddress)) {
      opts.logger?.debug({ peer: socket.remoteAddress }, 'agent-check from a peer not allowed: closed');
      socket.destroy();
      return;
    }
    let line: string;
    try {
      line = replyLine(source.state(), { ...opts.reply, announceReady: opts.announceReady?.() ?? false });
    } catch (err) {
      // Never leave HAProxy hanging: an agent that cannot tell says so.
      opts.logger?.error({ err }, 'agent-check reply failed');
      line = 'down #agent error\n';
    }
    // Anything HAProxy sends (agent-send) is read and ignored; the answer does not depend on it.
    socket.resume();
    socket.end(line);
    // A peer that never reads must not keep the socket.
    socket.setTimeout(5_000, () => socket.destroy());
  });
  server.maxConnections = 1024;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.logger?.error({ err }, 'agent-check server error'));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
