import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Control-plane writes need `Authorization: Bearer <token>` when a token is configured. Routes
 * opt in with `config: { auth: true }`. Comparing digests keeps the comparison constant-time
 * whatever the length of what was sent.
 */
export function bearerAuth(token: string) {
  const check = bearerCheck([token], 'this route needs Authorization: Bearer <AUTH_TOKEN>');
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!(request.routeOptions.config as { auth?: boolean }).auth) return;
    return check(request, reply);
  };
}

/**
 * A hook that lets a request through when its `Authorization: Bearer` token is any of `tokens`,
 * else answers 401 naming `headers.authorization`. Every token is compared (by digest, in constant
 * time), so the answer's timing says nothing about which one nearly matched.
 */
export function bearerCheck(tokens: readonly string[], message: string) {
  const expected = tokens.map(digest);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (match) {
      const sent = digest(match[1]!.trim());
      let ok = false;
      for (const e of expected) ok = timingSafeEqual(sent, e) || ok;
      if (ok) return;
    }
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="switchboard"')
      .send({ error: 'unauthorized', message, field: 'headers.authorization', reason: match ? 'wrong token' : 'missing' });
  };
}

/**
 * Which bearer tokens GET /turn/ice-servers accepts; undefined when it is open. It hands out
 * working TURN credentials, so with `credentialsRequireAuth` (the default) it needs a token as
 * soon as one is configured: the write token (auth.token) or the read token for this route alone
 * (turn.credentialsToken). No token configured at all: open, which is for development.
 */
export function turnCredentialTokens(
  auth: { token?: string | undefined },
  turn: { credentialsRequireAuth: boolean; credentialsToken?: string | undefined },
): string[] | undefined {
  if (!turn.credentialsRequireAuth) return undefined;
  const tokens = [auth.token, turn.credentialsToken].filter((t): t is string => typeof t === 'string' && t.length > 0);
  return tokens.length > 0 ? tokens : undefined;
}
