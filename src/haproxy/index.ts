import type { Logger } from 'pino';
import type { RoomService } from '../pools/rooms/service.js';
import type { NetworkPolicy } from '../security/network-policy.js';
import type { StateStore } from '../store/store.js';
import { defaultPaths, renderHaproxyConfig } from './config.js';
import { HaproxyProcess } from './process.js';
import { RuntimeApi } from './runtime.js';
import type { HaproxyConfig } from './schema.js';
import { HaproxySync } from './sync.js';

/** HAProxy as Switchboard's data plane: a managed (or attached) HAProxy kept in step with the store. */
export interface HaproxyMode {
  api: RuntimeApi;
  sync: HaproxySync;
  /** Undefined when attached to an HAProxy run by someone else. */
  process?: HaproxyProcess;
  close(): Promise<void>;
}

/** The pool whose servers fill the media backend (WebSockets to SFUs). */
export const HAPROXY_POOL = 'rooms';

export async function startHaproxyMode(opts: { config: HaproxyConfig; store: StateStore; logger: Logger; networkPolicy?: NetworkPolicy }): Promise<HaproxyMode> {
  const { config, store } = opts;
  const logger = opts.logger.child({ component: 'haproxy' });
  const paths = defaultPaths(config);
  const socket = config.attach?.socket ?? paths.socket;
  const api = new RuntimeApi(socket, config.sync.commandTimeoutMs);
  let process: HaproxyProcess | undefined;
  const sync = new HaproxySync({
    api,
    store,
    pool: HAPROXY_POOL,
    config,
    logger,
    ...(opts.networkPolicy ? { networkPolicy: opts.networkPolicy } : {}),
    ...(config.attach ? (config.attach.mapFile ? { mapFile: config.attach.mapFile } : {}) : { mapFile: paths.mapFile }),
  });
  if (!config.attach) {
    process = new HaproxyProcess({ config, text: renderHaproxyConfig(config, paths), socket, mapFile: paths.mapFile, logger, onRestart: () => void sync.reconcileNow() });
    await process.start();
  } else {
    // Fail early on a wrong address; the sync retries on its own afterwards.
    await api.showInfo().catch((err: Error) => logger.warn({ err, socket }, 'haproxy: the Runtime API does not answer yet'));
  }
  sync.start();
  await sync.settled();
  return {
    api,
    sync,
    ...(process ? { process } : {}),
    close: async () => {
      await sync.stop();
      await process?.stop();
    },
  };
}

/** Makes room answers wait until HAProxy's room map holds the room (clients connect right after). */
export function answerRoomsOnceMapped(rooms: RoomService, mode: HaproxyMode): void {
  rooms.answerAfter((roomId) => mode.sync.waitMapped(roomId));
}
