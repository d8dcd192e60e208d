import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Control-plane writes need `Authorization: Bearer <token>` when a token is configured. Routes
 * opt in with `config: { auth: true }`. Comparing digests keeps the comparison constant-time
 * whatever the length of what was sent.
 */
export function bearerAuth(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!(request.routeOptions.config as { auth?: boolean }).auth) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (match && timingSafeEqual(digest(match[1]!.trim()), expected)) return;
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="switchboard"')
      .send({ error: 'unauthorized', message: 'this route needs Authorization: Bearer <AUTH_TOKEN>', field: 'headers.authorization', reason: match ? 'wrong token' : 'missing' });
  };
}
