// Helpers shared by the streaming relay benchmarks (bench/rtmp.mjs, bench/udp-relay.mjs).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { children } from './lib.mjs';

/** CPU time all processes on the machine have used so far, in µs (user + nice + system, from /proc/stat). */
export function machineBusy() {
  const [, user, nice, system] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return ((user + nice + system) * 1e6) / 100;
}

/** Bytes a process has read and written so far through read/write syscalls (sockets included), from /proc/<pid>/io. */
export function ioOf(pid) {
  const io = Object.fromEntries(
    readFileSync(`/proc/${pid}/io`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(': '))
      .map(([k, v]) => [k, Number(v)]),
  );
  return { read: io.rchar, written: io.wchar };
}

/** CPU µs (user + system) of a process so far; 0 once it is gone. */
export function cpuTotal(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
  } catch {
    return 0;
  }
}

/**
 * Starts `node --input-type=module -e script` as a child with an IPC channel (killed when the bench
 * exits, like lib.mjs's start) and resolves once it sends `{ ready: true, ... }`; resolves with
 * [child, that message]. `child.ask(msg)` sends a message and resolves with the next answer.
 */
export function startNode(name, script, env = {}, timeoutMs = 10_000) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.name = name;
  children.push(child);
  child.ask = (msg) =>
    new Promise((resolve) => {
      child.once('message', resolve);
      child.send(msg);
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    child.once('message', (m) => {
      clearTimeout(timer);
      if (m?.ready) resolve([child, m]);
      else reject(new Error(`${name}: ${JSON.stringify(m)}`));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const median = (xs) => percentile([...xs].sort((a, b) => a - b), 50);

export const fmt = (x, d = 0) => (x === undefined || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
