import { connect, isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import type { ProbeOutcome } from '../core/health.js';
import { FORBIDDEN_DESTINATION, type ForbiddenDestinationError, type NetworkPolicy } from '../security/network-policy.js';

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
    socket.once('error', (err: NodeJS.ErrnoException) => finish(errorText(err)));
    socket.once('close', () => finish('connection closed'));
  });
}

/** A refused destination as a probe outcome (IP literals; names are refused by the guarded lookup). */
function refused(host: string, policy: NetworkPolicy | undefined): ProbeOutcome | undefined {
  if (!policy || !isIP(host)) return undefined;
  const reason = policy.refusal(host);
  return reason ? { ok: false, at: Date.now(), latencyMs: 0, error: `${FORBIDDEN_DESTINATION}: ${reason}` } : undefined;
}

/** A socket error as a probe's lastError: the code (and why, for a refused destination). */
export const errorText = (err: NodeJS.ErrnoException): string => (err.code === FORBIDDEN_DESTINATION ? `${err.code}: ${(err as ForbiddenDestinationError).reason}` : (err.code ?? err.message));

/**
 * TCP connect within the timeout: what the coturn balancer's health check does. With a network
 * policy, refused destinations are not connected to (IP literals checked here, names resolved
 * through the policy's guarded lookup).
 */
export function probeTcp(host: string, port: number, timeoutMs: number, policy?: NetworkPolicy): Promise<ProbeOutcome> {
  const no = refused(host, policy);
  if (no) return Promise.resolve(no);
  return settle(connect({ host, port, ...(policy ? { lookup: policy.lookup } : {}) }), timeoutMs, 'connect');
}

/**
 * A full TLS handshake within the timeout, for `turns:` ports. Certificates are not verified by
 * default: TURN servers often run self-signed ones, and the probe asks "does it answer", not
 * "is it trusted"; pass rejectUnauthorized to check them too.
 */
export function probeTls(
  host: string,
  port: number,
  timeoutMs: number,
  opts: { servername?: string; rejectUnauthorized?: boolean; policy?: NetworkPolicy } = {},
): Promise<ProbeOutcome> {
  const no = refused(host, opts.policy);
  if (no) return Promise.resolve(no);
  return settle(
    tlsConnect({
      host,
      port,
      servername: opts.servername ?? (isIP(host) ? undefined : host),
      rejectUnauthorized: opts.rejectUnauthorized ?? false,
      ...(opts.policy ? { lookup: opts.policy.lookup } : {}),
    }),
    timeoutMs,
    'secureConnect',
  );
}
