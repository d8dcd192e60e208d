import { Agent, request } from 'undici';
import { startSwitchboard, type SwitchboardProcess } from './process.js';
import { RedisServer } from './redis.js';
import { startSfu, type Sfu } from './sfu.js';

export type Json = Record<string, unknown>;

const agent = new Agent({ connections: 256 });

/** One JSON request to a Switchboard (or anything else answering JSON). */
export async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await request(base + path, {
    method: method as 'GET',
    dispatcher: agent,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Json };
}

/** Polls until `check` holds; the error names what was awaited. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Two `switchboard serve` processes on one fresh redis-server, and stand-in SFUs. */
export interface Pair {
  redis: RedisServer;
  sfus: Sfu[];
  a: SwitchboardProcess;
  b: SwitchboardProcess;
  stop(): Promise<void>;
}

export async function startPair(sfuCount: number, env: Record<string, string>): Promise<Pair> {
  const redis = await RedisServer.start();
  const sfus = await Promise.all(Array.from({ length: sfuCount }, () => startSfu()));
  const withRedis = { REDIS_URL: redis.url, ...env };
  const [a, b] = await Promise.all([startSwitchboard({ env: withRedis }), startSwitchboard({ env: withRedis })]);
  return {
    redis,
    sfus,
    a,
    b,
    stop: async () => {
      await Promise.all([a.stop(), b.stop()]);
      await Promise.all(sfus.map((s) => s.stop()));
      await redis.dispose();
    },
  };
}
