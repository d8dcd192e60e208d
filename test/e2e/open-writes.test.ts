import { afterAll, describe, expect, it } from 'vitest';
import { startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';

/** The start-up warning of an instance whose writes are open to the network (needs `npm run build`). */
const started: SwitchboardProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((sb) => sb.stop()));
});

interface Entry {
  level: number;
  msg: string;
  host?: string;
  openWrites?: boolean;
}

/**
 * The warn-level lines of a Switchboard started with `env`, once `done` holds for its log (the
 * warning is written right after listen, but the output pipe may lag the /healthz answer).
 */
async function warnings(env: Record<string, string>, done: (entries: Entry[]) => boolean): Promise<Entry[]> {
  const sb = await startSwitchboard({ env: { HEALTH_CHECK_INTERVAL: '600000', ...env } });
  started.push(sb);
  const entries = () =>
    sb
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Entry);
  const deadline = Date.now() + 5000;
  while (!done(entries())) {
    if (Date.now() > deadline) throw new Error(`the expected log lines did not appear:\n${sb.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return entries().filter((entry) => entry.level === 40);
}
const listening = (entries: Entry[]) => entries.some((e) => e.msg.startsWith('Switchboard listening'));

describe('open writes warning', () => {
  it('is logged at start with HOST=0.0.0.0 and no AUTH_TOKEN', async () => {
    const logged = (await warnings({ LOG_LEVEL: 'warn', HOST: '0.0.0.0', AUTH_TOKEN: '' }, (e) => e.some((w) => w.openWrites))).filter((w) => w.openWrites);
    expect(logged).toHaveLength(1);
    expect(logged[0]!.host).toBe('0.0.0.0');
    expect(logged[0]!.msg).toMatch(/No AUTH_TOKEN is set and the API listens on 0\.0\.0\.0:\d+.*register, heartbeat, rooms.*drain, delete.*open to anyone.*HOST=127\.0\.0\.1/);
  }, 40_000);

  it('is not logged with AUTH_TOKEN set, nor on loopback', async () => {
    // At info, the "listening" line comes after where the warning would be.
    const quiet = async (env: Record<string, string>) => (await warnings({ LOG_LEVEL: 'info', ...env }, listening)).filter((w) => w.openWrites);
    expect(await quiet({ HOST: '0.0.0.0', AUTH_TOKEN: 'a-long-token-for-tests' })).toEqual([]);
    expect(await quiet({ HOST: '127.0.0.1', AUTH_TOKEN: '' })).toEqual([]);
  }, 40_000);
});
