/** What the page reads from Switchboard: the shapes of `GET /events`, `/activity` and `/stats/history`. */

/** `serverView` in src/api/schemas.ts, as the client SDK types it. */
export type { ServerView } from '../../../src/client/types';
/** The dashboard's own payloads, shared with the server. */
export type { ActivityEntry as Activity, PoolSummary, StatsSample } from '../../../src/dashboard/types';
import type { ActivityEntry, PoolSummary, StatsSample } from '../../../src/dashboard/types';
import type { ServerView } from '../../../src/client/types';

export interface PlacementView {
  id: string;
  serverId: string;
  state: string;
}

export interface SnapshotPool {
  pool: string;
  summary: PoolSummary;
  servers: ServerView[];
  placements?: PlacementView[];
  placementsTruncated?: boolean;
}

export interface Snapshot {
  at: string;
  pools: SnapshotPool[];
}

export type Level = ActivityEntry['level'];

export interface StatsHistory {
  intervalSeconds: number;
  samples: StatsSample[];
}

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'offline';
