import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Placement } from '../../core/model.js';
import type { StateStore, StoreEvent } from '../../store/store.js';
import { ErrorBody, serverView, sortById } from '../schemas.js';
import { poolSummary } from './pools.js';

/** Tuning of `GET /events`; every field has a default fit for production. */
export interface EventsTuning {
  /** `: ping` comment lines this often (ms), so proxies and browsers keep the stream open. */
  heartbeatMs: number;
  /** Concurrent streams per instance; beyond: 503 `too_many_clients`. */
  maxClients: number;
  /** Events kept for `Last-Event-ID` resume; an older id gets a fresh snapshot. */
  bufferSize: number;
  /** Store changes are coalesced and written at most this often (ms), one write per client. */
  flushMs: number;
  /** More distinct changes than this in one flush: one snapshot instead (a burst of rooms). */
  burstLimit: number;
  /** Placements listed per pool in a snapshot; beyond: `placementsTruncated`. */
  maxSnapshotPlacements: number;
  /** A client whose socket holds more unsent bytes than this is dropped (it reconnects and resumes). */
  maxBufferedBytes: number;
}

export const defaultEventsTuning: EventsTuning = {
  heartbeatMs: 15_000,
  maxClients: 100,
  bufferSize: 1_000,
  flushMs: 100,
  burstLimit: 500,
  maxSnapshotPlacements: 10_000,
  maxBufferedBytes: 1024 * 1024,
};

/** A placement as the stream carries it: small, whatever the pool keeps on it. */
const compact = (p: Placement) => ({ id: p.id, serverId: p.serverId, state: p.state });

/**
 * A kept event: its payload as of its flush, rendered to text (`frame`) the first time a client
 * needs it — at once for connected clients, on a `Last-Event-ID` replay otherwise. With no
 * dashboard open nothing is serialized (it was ≈2 % of a placement's CPU).
 */
type Entry = { id: number; type: string; data: unknown; frame?: string } | { id: number; snapshot: true };

interface Client {
  res: ServerResponse;
  placements: boolean;
}

/**
 * Fans the store's changes out to `GET /events` streams. One store listener per instance whatever
 * the number of clients; changes from this instance and from every instance sharing Redis arrive
 * the same way (`StateStore.subscribe`). Changes are coalesced per key (a server, a placement:
 * the latest state wins, at the place of the first change) and written every `flushMs`, one write
 * per client; a burst larger than `burstLimit`, or a store `resync`, becomes one snapshot.
 * Every event has an id `<instance tag>-<n>`; the last `bufferSize` are kept for resume.
 */
export class EventHub {
  readonly tuning: EventsTuning;
  /** Tells this process's ids from another instance's (or an earlier process's). */
  private readonly tag = randomBytes(4).toString('hex');
  private seq = 0;
  private ring: Entry[] = [];
  private readonly pending = new Map<string, Exclude<StoreEvent, { type: 'resync' }>>();
  /** Frames other parts publish (`activity`, `stats`), sent in order with the next flush. */
  private extras: { type: string; data: unknown }[] = [];
  private needSnapshot = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly clients = new Set<Client>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly pools: readonly string[],
    tuning: Partial<EventsTuning> = {},
    private readonly log?: { error(obj: object, msg: string): void },
  ) {
    this.tuning = { ...defaultEventsTuning, ...tuning };
  }

  start(): void {
    this.unsubscribe ??= this.store.subscribe((event) => this.onChange(event));
  }

  /** Stops listening and ends every stream (before the HTTP server closes, which waits for them). */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearTimeout(this.flushTimer);
    clearInterval(this.heartbeatTimer);
    this.flushTimer = this.heartbeatTimer = undefined;
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  full(): boolean {
    return this.clients.size >= this.tuning.maxClients;
  }

  /** Starts a stream: a snapshot, or the events after `lastEventId` when they are still kept. */
  add(res: ServerResponse, opts: { placements: boolean; lastEventId?: string | undefined }): void {
    const client: Client = { res, placements: opts.placements };
    this.clients.add(client);
    res.once('close', () => this.remove(client));
    // A write racing a reset: the socket is gone, so is the client (never an unhandled 'error').
    res.on('error', () => this.remove(client));
    const missed = this.since(opts.lastEventId);
    let text = `retry: 2000\n\n`;
    if (missed) {
      const snapshots = new Map<boolean, string>();
      for (const e of missed) text += 'snapshot' in e ? this.snapshotFrame(e.id, client.placements, snapshots) : this.frameOf(e);
    } else {
      text += this.snapshotFrame(this.seq, client.placements);
    }
    this.write(client, text);
    this.heartbeatTimer ??= setInterval(() => this.ping(), this.tuning.heartbeatMs).unref();
  }

  private remove(client: Client): void {
    if (!this.clients.delete(client)) return;
    if (this.clients.size === 0) {
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = undefined;
    }
  }

  /** The kept entries after `lastEventId`; undefined when it is not ours or too old (→ snapshot). */
  private since(lastEventId: string | undefined): Entry[] | undefined {
    const match = lastEventId === undefined ? null : /^([0-9a-f]+)-(\d+)$/.exec(lastEventId.trim());
    if (!match || match[1] !== this.tag) return undefined;
    const n = Number(match[2]);
    if (!Number.isSafeInteger(n) || n > this.seq) return undefined;
    const oldest = this.ring[0]?.id ?? this.seq + 1;
    if (n < oldest - 1) return undefined;
    return this.ring.filter((e) => e.id > n);
  }

  private onChange(event: StoreEvent): void {
    if (event.type === 'resync') this.needSnapshot = true;
    else if (!this.needSnapshot) {
      const key = event.type === 'server' || event.type === 'server-removed' ? `s\u0000${event.pool}\u0000${event.type === 'server' ? event.server.id : event.id}` : `p\u0000${event.pool}\u0000${event.placement.id}`;
      // The latest state wins, at the place of the key's first change.
      this.pending.set(key, event);
      if (this.pending.size > this.tuning.burstLimit) this.needSnapshot = true;
    }
    if (this.needSnapshot) this.pending.clear();
    this.flushTimer ??= setTimeout(() => this.flush(), this.tuning.flushMs);
  }

  /**
   * Sends a frame of another kind (the dashboard's `activity` and `stats`) with the next flush,
   * after the store's changes of that flush; kept for resume like them. At most `burstLimit` wait.
   */
  publish(type: string, data: unknown): void {
    this.extras.push({ type, data });
    if (this.extras.length > this.tuning.burstLimit) this.extras.shift();
    this.flushTimer ??= setTimeout(() => this.flush(), this.tuning.flushMs);
  }

  private flush(): void {
    this.flushTimer = undefined;
    try {
      this.flushNow();
    } catch (err) {
      // Never out of a timer (that would end the process): the next flush sends a snapshot.
      this.log?.error({ err }, 'GET /events: flush failed');
      this.pending.clear();
      this.extras = [];
      this.needSnapshot = true;
    }
  }

  private flushNow(): void {
    const entries: Entry[] = [];
    if (this.needSnapshot) entries.push({ id: ++this.seq, snapshot: true });
    else for (const event of this.pending.values()) entries.push({ id: ++this.seq, ...this.change(event) });
    for (const { type, data } of this.extras) entries.push({ id: ++this.seq, type, data });
    this.pending.clear();
    this.extras = [];
    this.needSnapshot = false;
    if (entries.length === 0) return;
    this.ring.push(...entries);
    if (this.ring.length > this.tuning.bufferSize) this.ring = this.ring.slice(this.ring.length - this.tuning.bufferSize);
    if (this.clients.size === 0) return;
    // Rendered once per flush for all clients (per placements option for a snapshot).
    const snapshots = new Map<boolean, string>();
    const texts = new Map<boolean, string>();
    for (const client of this.clients) {
      let text = texts.get(client.placements);
      if (text === undefined) {
        text = '';
        for (const e of entries) text += 'snapshot' in e ? this.snapshotFrame(e.id, client.placements, snapshots) : this.frameOf(e);
        texts.set(client.placements, text);
      }
      this.write(client, text);
    }
  }

  private ping(): void {
    for (const client of this.clients) this.write(client, ': ping\n\n');
  }

  private write(client: Client, text: string): void {
    const { res } = client;
    if (res.destroyed || res.writableEnded) return this.remove(client);
    res.write(text);
    // A client that does not read: drop it rather than buffer without bound; it resumes.
    if (res.writableLength > this.tuning.maxBufferedBytes) {
      this.remove(client);
      res.destroy();
    }
  }

  private frame(id: number, type: string, data: unknown): string {
    return `id: ${this.tag}-${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private frameOf(e: { id: number; type: string; data: unknown; frame?: string }): string {
    return (e.frame ??= this.frame(e.id, e.type, e.data));
  }

  /** A change's event as of now (the server as the store has it at this flush). */
  private change(event: Exclude<StoreEvent, { type: 'resync' }>): { type: string; data: unknown } {
    switch (event.type) {
      case 'server': {
        const current = this.store.getServer(event.pool, event.server.id) ?? event.server;
        return { type: 'server', data: { pool: event.pool, server: serverView(current, this.store.countPlacements(event.pool, current.id)) } };
      }
      case 'server-removed':
        return { type: 'server-removed', data: { pool: event.pool, serverId: event.id } };
      case 'placement':
        return { type: 'placement', data: { pool: event.pool, placement: compact(event.placement) } };
      case 'placement-removed':
        return { type: 'placement-removed', data: { pool: event.pool, placement: compact(event.placement) } };
    }
  }

  private snapshotFrame(id: number, placements: boolean, cache?: Map<boolean, string>): string {
    const cached = cache?.get(placements);
    if (cached !== undefined) return cached;
    const frame = this.frame(id, 'snapshot', this.snapshot(placements));
    cache?.set(placements, frame);
    return frame;
  }

  /** Every pool with its servers (as `GET /servers` shows them) and, unless asked not to, its placements. */
  snapshot(withPlacements: boolean) {
    return {
      at: new Date().toISOString(),
      pools: this.pools.map((pool) => {
        const all = this.store.listPlacements(pool);
        const counts = new Map<string, number>();
        for (const p of all) counts.set(p.serverId, (counts.get(p.serverId) ?? 0) + 1);
        const servers = sortById(this.store.listServers(pool)).map((s) => serverView(s, counts.get(s.id) ?? 0));
        const entry: Record<string, unknown> = { pool, summary: poolSummary(this.store, pool), servers };
        if (withPlacements) {
          const max = this.tuning.maxSnapshotPlacements;
          entry.placements = all.slice(0, max).map(compact);
          if (all.length > max) entry.placementsTruncated = true;
        }
        return entry;
      }),
    };
  }
}

const description = [
  'Server-sent events (`text/event-stream`). First a `snapshot` event: every pool with its summary (as `GET /pools`), its servers (as `GET /servers`) and its placements as `{id, serverId, state}` (omitted with `?placements=0`).',
  'Then every change as it happens, on this instance or any instance sharing its Redis: `server` `{pool, server}`, `server-removed` `{pool, serverId}`, `placement` and `placement-removed` `{pool, placement}`; a large burst or a store resync comes as a fresh `snapshot`.',
  'The dashboard\'s own events come on the same stream: `activity` (one line of the event log, as `GET /activity` lists them) and `stats` (one point of the charts every 5 s, as `GET /stats/history` lists them).',
  'Changes are coalesced (per server and placement, the latest state) and written at most every 100 ms. Every event has an `id`; reconnecting with `Last-Event-ID` (or `?lastEventId=`) replays what was missed (the last 1,000 events), else starts with a snapshot.',
  '`: ping` comments every 15 s. At most 100 streams per instance: 503 `too_many_clients` beyond.',
].join('\n\n');

/** `GET /events`: the live picture for the dashboard. Open like every read. */
export const eventRoutes: FastifyPluginAsyncTypebox<{ hub: EventHub }> = async (app, { hub }) => {
  hub.start();
  // Before the HTTP server closes: it waits for open responses, and a stream never ends by itself.
  app.addHook('preClose', (done) => {
    hub.close();
    done();
  });
  app.addHook('onClose', (_app, done) => {
    hub.close();
    done();
  });

  app.get(
    '/events',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'Live changes as server-sent events: a snapshot, then every change',
        description,
        querystring: Type.Object({
          placements: Type.Optional(Type.Union([Type.Literal('0'), Type.Literal('1')], { description: '0: snapshots without the placement lists.' })),
          lastEventId: Type.Optional(Type.String({ maxLength: 64, description: 'As the Last-Event-ID header (which wins), for clients that cannot set headers.' })),
        }),
        headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ maxLength: 64 })) }),
        response: {
          200: {
            description: 'An event stream (`snapshot`, `server`, `server-removed`, `placement`, `placement-removed`, `activity`, `stats`).',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          400: ErrorBody,
          503: ErrorBody,
        },
      },
    },
    (req, reply) => {
      if (hub.full()) {
        void reply
          .code(503)
          .header('retry-after', '5')
          .send({ error: 'too_many_clients', message: `this instance serves at most ${hub.tuning.maxClients} event streams; try again later or another instance` });
        return;
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // The stream is the connection's last response: when it ends (close, slow client), the
        // socket goes too, rather than idling in keep-alive while the server waits to close.
        connection: 'close',
        // nginx and similar proxies: do not buffer the stream.
        'x-accel-buffering': 'no',
      });
      res.socket?.setNoDelay(true);
      hub.add(res, { placements: req.query.placements !== '0', lastEventId: req.headers['last-event-id'] ?? req.query.lastEventId });
    },
  );
};
