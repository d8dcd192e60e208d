import type { ChildProcess } from 'node:child_process';

/**
 * Child processes the tests started; killed if the test process exits without stopping them.
 * Children started in their own process group (`detached`, e.g. `npm start`, whose node
 * grandchild does the work) are signalled as a group.
 */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) signal(c, 'SIGKILL');
});

export function track(child: ChildProcess): void {
  children.add(child);
  child.once('close', () => children.delete(child));
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (child.spawnargs && (child as ChildProcess & { detachedGroup?: boolean }).detachedGroup) process.kill(-child.pid!, sig);
    else child.kill(sig);
  } catch {
    /* already gone */
  }
}

/** Marks a child spawned with `detached: true` so it is signalled as a process group. */
export function asGroup(child: ChildProcess): ChildProcess {
  (child as ChildProcess & { detachedGroup?: boolean }).detachedGroup = true;
  return child;
}

/**
 * Signals a child and waits until it and everything holding its output pipes are gone;
 * SIGKILL after `graceMs`. Resolves with the exit code (null if a signal ended it).
 */
export async function stopChild(child: ChildProcess, sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<number | null> {
  const closed = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (!child.stdout || child.stdout.closed) return resolve(child.exitCode);
    }
    child.once('close', (code) => resolve(code));
  });
  signal(child, sig);
  const timer = setTimeout(() => signal(child, 'SIGKILL'), graceMs);
  const code = await closed;
  clearTimeout(timer);
  return code;
}
