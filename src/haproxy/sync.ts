import { lookup } from 'node:dns/promises';
import { rename, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Server } from '../core/model.js';
import type { StateStore, StoreEvent } from '../store/store.js';
import { MEDIA_BACKEND, ROOM_MAP_NAME, SLOT_PREFIX } from './config.js';
import { isErrorOutput, type RuntimeApi, type ServerState } from './runtime.js';
import type { HaproxyConfig } from './schema.js';
import { NetworkPolicy } from '../security/network-policy.js';

export type SlotState = 'ready' | 'drain' | 'maint';

/**
 * What HAProxy should hold for one server, from Switchboard's view:
 *   - `maint` when the operator put it in maintenance, or it is not healthy (unhealthy, or not
 *     yet probed): a server Switchboard would not place on is out of HAProxy entirely — not
 *     `drain`, which would still send it its rooms' WebSockets (and cookie-sticky clients) that
 *     cannot be served by a dead server;
 *   - `drain` while draining: no new balanced connections, but its rooms' WebSockets (the room
 *     map's `use-server`) still reach it, as Switchboard keeps its rooms;
 *   - `ready` otherwise.
 */
export function desiredState(server: Server): SlotState {
  if (server.adminState === 'maint' || server.health.status !== 'healthy') return 'maint';
  return server.adminState === 'drain' ? 'drain' : 'ready';
}

/** The address HAProxy connects to for a server: its WebSocket URL (falling back to serviceUrl), or serviceUrl. */
export function serverTarget(server: Server, from: 'ws' | 'service'): { host: string; port: number } | undefined {
  const candidates = from === 'ws' ? [server.endpoints.ws, server.serviceUrl] : [server.serviceUrl];
  for (const raw of candidates) {
    if (!raw) continue;
    try {
      const u = new URL(raw);
      const secure = u.protocol === 'wss:' || u.protocol === 'https:';
      const port = u.port ? Number(u.port) : secure ? 443 : 80;
      return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
    } catch {
      continue;
    }
  }
  return undefined;
}

const DEFAULT_POLICY = new NetworkPolicy();

/** Room ids HAProxy's map and CLI can carry (the API's id pattern already guarantees it). */
const MAP_KEY = /^[A-Za-z0-9._~:@-]+$/;

export interface SyncOptions {
  api: RuntimeApi;
  store: StateStore;
  pool: string;
  config: HaproxyConfig;
  /** The room map file as HAProxy knows it; undefined: found by name through `show map`. */
  mapFile?: string;
  logger: Logger;
  /**
   * The SSRF guard: HAProxy is handed only addresses it allows (a `wsUrl` naming a metadata
   * address, or a name that resolves to one, gets no slot). Default: the default policy.
   */
  networkPolicy?: NetworkPolicy;
}

export interface ReconcileResult {
  /** Runtime API writes made. */
  writes: string[];
  /** Servers that got no slot (all taken). */
  unplaced: string[];
}

/**
 * Keeps HAProxy in step with Switchboard's view of one pool: servers → media backend slots
 * (address, weight, ready/drain/maint) and placements → the room map. Runs on start, on every
 * store event for the pool (debounced) and every `sync.reconcileMs`; each run reads HAProxy's
 * state (`show servers state`, `show map`) and writes only the differences, so it also repairs
 * what an HAProxy restart or an operator's CLI change undid.
 *
 * Weights: the server's weight (0-256, the same scale as HAProxy's). With `media.agent` set, the
 * HAProxy agent owns the weight (`up NN%`) and Switchboard leaves it alone.
 */
export class HaproxySync {
  /** serverId → slot name. */
  private readonly slots = new Map<string, string>();
  private mapFile: string | undefined;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private interval: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failing = false;
  private readonly waiters: (() => void)[] = [];
  /** The next run also reconciles the room map (start, periodic, after a failure or restart). */
  private full = true;
  /** Serializes every Runtime API write sequence (reconciles and room updates). */
  private lane: Promise<unknown> = Promise.resolve();
  /** Room map updates waiting to be written: roomId → slot, or null to remove. */
  private readonly roomOps = new Map<string, string | null>();
  private roomDrain: Promise<void> | undefined;
  /** What the room map holds, as last read or written. */
  private mapped = new Map<string, string>();
  /** Writes made since start (for tests and logs). */
  writes = 0;
  reconciles = 0;
  lastError: Error | undefined;

  constructor(private readonly o: SyncOptions) {
    this.mapFile = o.mapFile;
  }

  start(): void {
    this.stopped = false;
    this.unsubscribe = this.o.store.subscribe((e: StoreEvent) => {
      if (e.pool !== this.o.pool) return;
      if (e.type === 'placement' || e.type === 'placement-removed') this.onPlacement(e.type === 'placement' ? e.placement.serverId : undefined, e.placement.id);
      else if (e.type === 'resync') this.requestFull();
      else this.schedule();
    });
    this.interval = setInterval(() => this.requestFull(), this.o.config.sync.reconcileMs);
    this.interval.unref();
    this.requestFull();
  }

  private requestFull(): void {
    this.full = true;
    this.schedule(0);
  }

  /**
   * A room is written to the map as soon as it is reserved (before its media server is asked to
   * create it), one `add map`/`set map`/`del map` per change without reading the whole map, so
   * the map holds it before the client has the answer (see `flushRooms`).
   */
  private onPlacement(serverId: string | undefined, roomId: string): void {
    if (!MAP_KEY.test(roomId)) return;
    const slot = serverId === undefined ? null : this.slots.get(serverId);
    if (slot === undefined) {
      this.requestFull(); // its server has no slot yet: the full pass places both
      return;
    }
    this.roomOps.set(roomId, slot);
    this.kickRooms();
  }

  private kickRooms(): void {
    if (this.roomDrain || this.stopped) return;
    this.roomDrain = this.exclusive(async () => {
      for (const [roomId, slot] of this.roomOps) {
        this.roomOps.delete(roomId);
        await this.applyRoom(roomId, slot);
      }
    })
      .catch((err: unknown) => {
        this.o.logger.warn({ err }, 'haproxy: room map update failed; reconciling');
        this.roomOps.clear();
        this.requestFull();
      })
      .finally(() => {
        this.roomDrain = undefined;
        if (this.roomOps.size > 0) this.kickRooms();
      });
  }

  private async applyRoom(roomId: string, slot: string | null): Promise<void> {
    const { api } = this.o;
    const map = await this.findMapFile();
    const cur = this.mapped.get(roomId);
    if (slot === null) {
      if (cur === undefined) return;
      const out = await api.raw(`del map ${map} ${roomId}`);
      if (isErrorOutput(out) && !/not found/i.test(out)) throw new Error(`HAProxy refused "del map ${map} ${roomId}": ${out.trim()}`);
      this.mapped.delete(roomId);
    } else {
      if (cur === slot) return;
      if (cur !== undefined) {
        const out = await api.raw(`set map ${map} ${roomId} ${slot}`);
        if (isErrorOutput(out)) await api.command(`add map ${map} ${roomId} ${slot}`);
      } else await api.command(`add map ${map} ${roomId} ${slot}`);
      this.mapped.set(roomId, slot);
    }
    this.writes++;
  }

  /**
   * Resolves once HAProxy's room map sends `roomId` to its server's slot (or after `timeoutMs`,
   * logged): what a room's answer waits for in HAProxy mode, so the client's WebSocket, sent right
   * after, reaches the room's server. Covers a room whose server has no slot yet (a full pass is
   * asked for) and a map write that failed (queued again).
   */
  async waitMapped(roomId: string, timeoutMs = this.o.config.sync.commandTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const placement = this.o.store.getPlacement(this.o.pool, roomId);
      if (!placement || this.stopped) return; // gone (or not ours to map): nothing to wait for
      const slot = this.slots.get(placement.serverId);
      if (slot !== undefined && this.mapped.get(roomId) === slot) return;
      if (Date.now() >= deadline) {
        this.o.logger.warn({ roomId, serverId: placement.serverId, slot }, 'haproxy: room not in the room map in time; answering anyway');
        return;
      }
      if (slot === undefined) this.requestFull();
      else if (!this.roomOps.has(roomId)) {
        this.roomOps.set(roomId, slot);
        this.kickRooms();
      }
      await new Promise((r) => setTimeout(r, Math.min(10, Math.max(1, deadline - Date.now()))));
      await this.flushRooms(Math.max(0, deadline - Date.now()));
    }
  }

  /**
   * Resolves once the room map updates queued so far are written (or after `timeoutMs`).
   */
  async flushRooms(timeoutMs = this.o.config.sync.commandTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.roomDrain && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.roomDrain, new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
      clearTimeout(timer);
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lane.then(fn, fn);
    this.lane = p.catch(() => undefined);
    return p;
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    clearInterval(this.interval);
    this.timer = undefined;
    const running = this.running ?? Promise.resolve();
    void running.finally(() => {
      for (const w of this.waiters.splice(0)) w();
    });
    return running;
  }

  /** The slot a server holds, if any. */
  slotOf(serverId: string): string | undefined {
    return this.slots.get(serverId);
  }

  /** Runs a full reconcile now (after any under way) and resolves when it is done. */
  async reconcileNow(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.full = true;
    while (this.running) await this.running;
    await this.run();
  }

  /** Resolves once no reconcile is scheduled or running. */
  settled(): Promise<void> {
    if (!this.timer && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private schedule(delay = this.o.config.sync.debounceMs): void {
    if (this.stopped) return;
    const at = Date.now() + delay;
    if (this.timer) {
      if (this.timerAt <= at) return;
      clearTimeout(this.timer); // a sooner run is wanted (a room)
    }
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delay);
  }

  private run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const full = this.full;
    this.full = false;
    this.running = (async () => {
      try {
        const result = await this.exclusive(() => this.reconcile(full));
        this.reconciles++;
        if (this.failing) this.o.logger.info('haproxy: Runtime API reachable again; in step');
        this.failing = false;
        this.lastError = undefined;
        if (result.writes.length > 0) this.o.logger.debug({ writes: result.writes }, 'haproxy: synced');
      } catch (err) {
        this.lastError = err as Error;
        if (!this.failing) this.o.logger.warn({ err }, 'haproxy: sync failed; retrying');
        this.failing = true;
        this.again = true;
        if (full) this.full = true;
      }
    })().finally(() => {
      this.running = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        this.schedule(this.failing ? Math.min(1_000, this.o.config.sync.reconcileMs) : undefined);
      }
      if (!this.timer) for (const w of this.waiters.splice(0)) w();
    });
    return this.running;
  }

  private async findMapFile(): Promise<string> {
    if (this.mapFile) return this.mapFile;
    const maps = await this.o.api.listMaps();
    const found = maps.find((m) => basename(m.file) === ROOM_MAP_NAME);
    if (!found) throw new Error(`haproxy: no map named ${ROOM_MAP_NAME} is loaded (set haproxy.attach.mapFile)`);
    return (this.mapFile = found.file);
  }

  /**
   * One pass: read HAProxy, compare with the store, write the differences — the servers, and with
   * `rooms` the whole room map too.
   */
  async reconcile(rooms = true): Promise<ReconcileResult> {
    const { api, store, pool, config } = this.o;
    const writes: string[] = [];
    const write = async (cmd: string) => {
      await api.command(cmd);
      writes.push(cmd);
      this.writes++;
    };
    const observedList = (await api.showServersState(MEDIA_BACKEND)).filter((s) => s.name.startsWith(SLOT_PREFIX));
    if (observedList.length === 0) throw new Error(`haproxy: backend ${MEDIA_BACKEND} has no ${SLOT_PREFIX}N slots`);
    const observed = new Map<string, ServerState>(observedList.map((s) => [s.name, s]));
    const slotNames = [...observed.keys()].sort((a, b) => Number(a.slice(SLOT_PREFIX.length)) - Number(b.slice(SLOT_PREFIX.length)));

    const servers = store.listServers(pool);
    const present = new Set(servers.map((s) => s.id));
    for (const id of [...this.slots.keys()]) if (!present.has(id)) this.slots.delete(id);
    for (const [id, slot] of this.slots) if (!observed.has(slot)) this.slots.delete(id); // fewer slots after a restart

    // Where each server is to be reached.
    const targets = new Map<string, { addr: string; port: number }>();
    const resolved = new Map<string, string | undefined>();
    for (const s of servers) {
      const t = serverTarget(s, config.media.address);
      if (!t) continue;
      let addr = isIP(t.host) ? t.host : resolved.get(t.host);
      if (addr === undefined && !isIP(t.host) && !resolved.has(t.host)) {
        addr = await lookup(t.host).then((r) => r.address, () => undefined);
        resolved.set(t.host, addr);
      }
      if (!addr) continue;
      const refused = (this.o.networkPolicy ?? DEFAULT_POLICY).refusal(addr);
      if (refused) {
        this.o.logger.warn({ server: s.id, address: addr, reason: refused }, 'haproxy: not handing HAProxy a refused destination; the server gets no slot');
        continue;
      }
      targets.set(s.id, { addr, port: t.port });
    }

    // Slots: keep assignments; a server seen for the first time takes the slot already pointing at
    // its address (Switchboard restarted, HAProxy kept running), else a free one.
    const taken = new Set(this.slots.values());
    const unplaced: string[] = [];
    for (const s of servers) {
      if (this.slots.has(s.id)) continue;
      const t = targets.get(s.id);
      if (!t) {
        unplaced.push(s.id);
        continue;
      }
      const free = slotNames.filter((n) => !taken.has(n));
      const slot = free.find((n) => observed.get(n)!.addr === t.addr && observed.get(n)!.port === t.port) ?? free.find((n) => observed.get(n)!.addr === '0.0.0.0') ?? free[0];
      if (!slot) {
        unplaced.push(s.id);
        continue;
      }
      this.slots.set(s.id, slot);
      taken.add(slot);
    }
    if (unplaced.length > 0) this.o.logger.warn({ servers: unplaced, slots: slotNames.length }, 'haproxy: servers without a slot (all slots taken, or no address); raise haproxy.media.slots');

    for (const s of servers) {
      const slot = this.slots.get(s.id);
      const t = targets.get(s.id);
      if (!slot || !t) continue;
      const cur = observed.get(slot)!;
      const ref = `${MEDIA_BACKEND}/${slot}`;
      let state = cur.state;
      if (cur.addr !== t.addr || cur.port !== t.port) {
        if (state !== 'maint') {
          await write(`set server ${ref} state maint`);
          state = 'maint';
        }
        await write(`set server ${ref} addr ${t.addr} port ${t.port}`);
      }
      const weight = Math.max(0, Math.min(256, Math.round(s.weight)));
      if (!config.media.agent && cur.weight !== weight) await write(`set server ${ref} weight ${weight}`);
      const want = desiredState(s);
      if (state !== want) await write(`set server ${ref} state ${want}`);
    }
    for (const name of slotNames) {
      if (!taken.has(name) && observed.get(name)!.state !== 'maint') await write(`set server ${MEDIA_BACKEND}/${name} state maint`);
    }

    if (rooms) await this.reconcileRooms(write);
    if (writes.length > 0 && config.stateFile) await this.saveState(config.stateFile);
    return { writes, unplaced };
  }

  /** The room map: roomId → slot of its server. */
  private async reconcileRooms(write: (cmd: string) => Promise<void>): Promise<void> {
    const { api, store, pool } = this.o;
    const mapFile = await this.findMapFile();
    const want = new Map<string, string>();
    for (const p of store.listPlacements(pool)) {
      const slot = this.slots.get(p.serverId);
      if (slot && MAP_KEY.test(p.id)) want.set(p.id, slot);
    }
    const have = new Map<string, string[]>();
    for (const e of await api.showMap(mapFile)) have.set(e.key, [...(have.get(e.key) ?? []), e.value]);
    for (const [key, values] of have) {
      const target = want.get(key);
      if (target === undefined || values.length > 1) await write(`del map ${mapFile} ${key}`);
      else if (values[0] !== target) await write(`set map ${mapFile} ${key} ${target}`);
    }
    for (const [key, slot] of want) {
      const values = have.get(key);
      if (!values || values.length > 1) await write(`add map ${mapFile} ${key} ${slot}`);
    }
    this.mapped = want;
  }

  /** Writes `show servers state` to the server-state file, so a restarted HAProxy starts with the slots filled. */
  private async saveState(file: string): Promise<void> {
    try {
      const text = await this.o.api.command('show servers state');
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    } catch (err) {
      this.o.logger.warn({ err, file }, 'haproxy: cannot write the server-state file');
    }
  }
}
