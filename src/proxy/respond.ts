import { STATUS_CODES } from 'node:http';

/**
 * The proxy's own answers (errors, limits): JSON bodies naming what went wrong, as the API's do —
 * `{"error":"<code>","message":"<why>"}`. The string is UTF-8 (content-length counts UTF-8 bytes):
 * write it with the default encoding.
 */
export function errorResponse(status: number, error: string, message: string, options: { close: boolean; retryAfterSeconds?: number | undefined; minor?: number; head?: boolean }): string {
  const body = JSON.stringify({ error, message });
  let head = `HTTP/1.${options.minor ?? 1} ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n`;
  if (options.retryAfterSeconds !== undefined) head += `retry-after: ${options.retryAfterSeconds}\r\n`;
  head += options.close ? 'connection: close\r\n' : options.minor === 0 ? 'connection: keep-alive\r\n' : '';
  // An answer to HEAD has no body (RFC 9110 §9.3.2): bytes after its head would be read as the
  // start of the next answer on a kept-alive connection.
  return options.head === true ? `${head}\r\n` : `${head}\r\n${body}`;
}

/** Machine-readable codes for the proxy's answers. */
export const ProxyError = {
  badRequest: 'bad_request',
  headersTooLarge: 'request_header_fields_too_large',
  bodyTooLarge: 'payload_too_large',
  notImplemented: 'not_implemented',
  versionNotSupported: 'http_version_not_supported',
  noBackend: 'no_backend_available',
  queueFull: 'queue_full',
  queueTimeout: 'queue_timeout',
  badGateway: 'bad_gateway',
  gatewayTimeout: 'gateway_timeout',
  rateLimited: 'rate_limited',
  roomNotFound: 'room_not_found',
  roomPending: 'room_pending',
  shuttingDown: 'shutting_down',
  requestTimeout: 'request_timeout',
} as const;

export function codeForHeadError(status: number): string {
  switch (status) {
    case 431:
      return ProxyError.headersTooLarge;
    case 501:
      return ProxyError.notImplemented;
    case 505:
      return ProxyError.versionNotSupported;
    default:
      return ProxyError.badRequest;
  }
}
