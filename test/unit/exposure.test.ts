import { describe, expect, it } from 'vitest';
import { isLoopbackHost, openWritesWarning } from '../../src/security/exposure.js';

describe('isLoopbackHost', () => {
  it('knows loopback addresses and names', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', 'api.localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '0:0:0:0:0:ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
  });

  it('takes everything else as reachable from elsewhere', () => {
    for (const host of ['0.0.0.0', '::', '[::]', '10.0.0.5', '192.168.1.1', '::ffff:10.0.0.1', 'fe80::1', 'switchboard.internal', '128.0.0.1', '127.0.0.1.example.com', '']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});

describe('openWritesWarning', () => {
  it('warns, in one line, when no token is set and the API listens beyond loopback', () => {
    const warning = openWritesWarning({ host: '0.0.0.0', port: 3001 });
    expect(warning).toBeDefined();
    expect(warning).not.toContain('\n');
    for (const word of ['AUTH_TOKEN', '0.0.0.0:3001', 'register', 'heartbeat', 'rooms', 'drain', 'delete', 'open to anyone', 'HOST=127.0.0.1']) expect(warning).toContain(word);
    expect(warning).not.toContain('TURN');
    expect(openWritesWarning({ host: '::', port: 1, turnCredentialsOpen: true })).toContain('/turn/ice-servers');
    expect(openWritesWarning({ host: '10.1.2.3', port: 80, authToken: '' })).toBeDefined();
  });

  it('is quiet with a token, or on loopback', () => {
    expect(openWritesWarning({ host: '0.0.0.0', port: 3001, authToken: 'a-long-token' })).toBeUndefined();
    expect(openWritesWarning({ host: '127.0.0.1', port: 3001 })).toBeUndefined();
    expect(openWritesWarning({ host: '::1', port: 3001, turnCredentialsOpen: true })).toBeUndefined();
  });
});
