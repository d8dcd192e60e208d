import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, track } from './children.js';
import { freePort } from './ports.js';

/** One sample of an instant vector, as `/api/v1/query` answers it. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PromAnswer {
  status: 'success' | 'error';
  data?: { resultType: string; result: PromSample[] | [number, string] };
  errorType?: string;
  error?: string;
}

/** A real Prometheus (the `prometheus` binary) on a free loopback port, with its data in a temp dir. */
export interface Prometheus {
  port: number;
  url: string;
  dir: string;
  child: ChildProcess;
  /** `GET /api/v1/query` at the current time. */
  query(expr: string): Promise<PromAnswer>;
  /** The value of an expression that yields one sample (or a scalar); undefined when it yields none. */
  value(expr: string): Promise<number | undefined>;
  /** What Prometheus printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus with `config` (prometheus.yml text) and waits until `/-/ready` answers 200.
 * Its storage and config live in a temp dir that `stop()` removes.
 */
export async function startPrometheus(config: string, opts: { readyTimeoutMs?: number } = {}): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-prom-'));
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn('prometheus', [`--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  const query = async (expr: string): Promise<PromAnswer> => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    return (await res.json()) as PromAnswer;
  };
  const value = async (expr: string): Promise<number | undefined> => {
    const answer = await query(expr);
    if (answer.status !== 'success' || !answer.data) throw new Error(`query ${expr} failed: ${answer.errorType}: ${answer.error}`);
    const { resultType, result } = answer.data;
    if (resultType === 'scalar') return Number((result as [number, string])[1]);
    const samples = result as PromSample[];
    if (samples.length > 1) throw new Error(`query ${expr} yields ${samples.length} samples, not one: ${JSON.stringify(samples)}`);
    return samples.length ? Number(samples[0]!.value[1]) : undefined;
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode} before it was ready:\n${out}`);
    }
    const res = await fetch(`${url}/-/ready`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus was not ready on ${url} in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { port, url, dir, child, query, value, output: () => out, stop };
}
