import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import type { ProbeOutcome } from '../core/health.js';

function settle(socket: Socket, timeoutMs: number, readyEvent: 'connect' | 'secureConnect'): Promise<ProbeOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const latencyMs = performance.now() - started;
      resolve(error ? { ok: false, at: Date.now(), latencyMs, error } : { ok: true, at: Date.now(), latencyMs });
    };
    const timer = setTimeout(() => finish(`timeout after ${timeoutMs} ms`), timeoutMs);
    socket.once(readyEvent, () => finish());
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.once('close', () => finish('connection closed'));
  });
}

/** TCP connect within the timeout: what the coturn balancer's health check does. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeOutcome> {
  return settle(connect({ host, port }), timeoutMs, 'connect');
}

/**
 * A full TLS handshake within the timeout, for `turns:` ports. Certificates are not verified by
 * default: TURN servers often run self-signed ones, and the probe asks "does it answer", not
 * "is it trusted"; pass rejectUnauthorized to check them too.
 */
export function probeTls(host: string, port: number, timeoutMs: number, opts: { servername?: string; rejectUnauthorized?: boolean } = {}): Promise<ProbeOutcome> {
  return settle(
    tlsConnect({ host, port, servername: opts.servername ?? (/^[\d.:]+$/.test(host) ? undefined : host), rejectUnauthorized: opts.rejectUnauthorized ?? false }),
    timeoutMs,
    'secureConnect',
  );
}
