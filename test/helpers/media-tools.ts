import { spawn, type ChildProcess } from 'node:child_process';
import { stopChild, track } from './children.js';

/** Starts a tool (ffmpeg, ffprobe, ...) tracked for cleanup; its output is drained. */
export function run(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

/** Runs a tool to completion (killed after `timeoutMs`): its exit code (null on a signal), output and duration. */
export function complete(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const child = run(cmd, args);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => void stopChild(child, 'SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}
