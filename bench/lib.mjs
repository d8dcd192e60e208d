// Helpers shared by the benchmarks: child processes, free ports, readiness, CPU accounting.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';

export const children = [];
export const log = (msg) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a child process that is killed when the bench exits. */
export function start(name, cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  child.name = name;
  children.push(child);
  return child;
}

export async function waitHttp(url, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.status < 500) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function cleanup() {
  // SIGTERM when profiling, so profiled processes can write their profile.
  for (const c of children) c.kill(process.env.BENCH_CPU_PROF ? 'SIGTERM' : 'SIGKILL');
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** CPU time a process has used so far, in µs: [user, system]. From /proc (Linux). */
export function cpuOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return [(Number(fields[11]) * 1e6) / 100, (Number(fields[12]) * 1e6) / 100]; // utime, stime in USER_HZ (100) ticks
}

/** CPU used so far by this process (the load generator) and every child. */
export function cpuSnapshot() {
  const own = process.cpuUsage();
  const snap = { 'load generator': [own.user, own.system] };
  for (const c of children) snap[c.name] = cpuOf(c.pid);
  return snap;
}

export function machine() {
  return {
    node: process.version,
    redis: execFileSync('redis-server', ['--version']).toString().trim(),
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    version: JSON.parse(readFileSync('package.json', 'utf8')).version,
  };
}

/** Writes a result file under bench/results/ and says where. */
export function writeResults(name, data) {
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify(data, null, 2));
  log(`results written to ${file}`);
}

export function main(fn) {
  fn()
    .catch((err) => {
      console.error(`bench failed: ${err.stack ?? err}`);
      process.exitCode = 1;
    })
    .finally(cleanup);
}
