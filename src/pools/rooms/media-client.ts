import { request, type Dispatcher } from 'undici';
import { joinUrl } from '../../probes/http.js';

export interface CreateRoomBody {
  eventNotificationUri?: string;
  maxPeerCount: number;
}

/**
 * Asks a media server to create a room: `POST {serviceUrl}/rooms/{roomId}` with
 * `{eventNotificationUri, maxPeerCount}`, as the original mediasoup load balancer does. The answer
 * (`{protocol, wsUrl, roomId}` from the mediasoup server) is returned as the server gave it.
 */
export async function createRoomOnServer(
  serviceUrl: string,
  roomId: string,
  body: CreateRoomBody,
  timeoutMs: number,
  dispatcher?: Dispatcher,
): Promise<Record<string, unknown>> {
  const res = await request(joinUrl(serviceUrl, `/rooms/${encodeURIComponent(roomId)}`), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'switchboard' },
    body: JSON.stringify(body),
    // undici's own timeouts, not an AbortSignal: a signal costs a timer and listeners per call on
    // the placement hot path.
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    ...(dispatcher ? { dispatcher } : {}),
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`media server answered HTTP ${res.statusCode}`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error('media server answered with a body that is not JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('media server answered with JSON that is not an object');
  return data as Record<string, unknown>;
}

/** A short reason for a failed call, for logs and the 502 body. */
export function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') return `no answer within ${timeoutMs} ms`;
  return e.code ? `${e.code}: ${e.message}` : e.message;
}
