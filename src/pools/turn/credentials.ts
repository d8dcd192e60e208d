import { createHmac } from 'node:crypto';

/**
 * TURN REST API credentials, as coturn checks them with `use-auth-secret` /
 * `static-auth-secret`: username `<expiry unix time>:<user>`, password
 * base64(HMAC-SHA1(secret, username)). coturn accepts them until the expiry time.
 */
export function turnCredentials(secret: string, user: string, ttlSeconds: number, nowMs: number): { username: string; credential: string; expiresAt: number } {
  const expiresAt = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = user ? `${expiresAt}:${user}` : String(expiresAt);
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAt };
}
