import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { httpPools } from '../../src/pools/http/service.js';

function dirWith(backends?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-cfg-'));
  if (backends !== undefined) {
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'backends.json'), typeof backends === 'string' ? backends : JSON.stringify(backends));
  }
  return dir;
}

describe('proxy configuration (seed 002)', () => {
  it('is off without backends, a proxy section or PORT: the API alone, as before', () => {
    const c = loadConfig({ env: {}, cwd: dirWith() });
    expect(c.proxy.enabled).toBe(false);
    expect(c.proxy.port).toBe(8080);
  });

  it("reads config/backends.json from the working directory, the seed's way", () => {
    const c = loadConfig({ env: {}, cwd: dirWith({ backends: [{ host: 'backend-1', port: 3001 }, { host: 'backend-2', port: 3002 }] }) });
    expect(c.proxy.enabled).toBe(true);
    expect(c.proxy.backends).toEqual([
      { host: 'backend-1', port: 3001 },
      { host: 'backend-2', port: 3002 },
    ]);
    expect(httpPools(c.proxy)).toEqual(['web', 'media']);
  });

  it('takes PORT, WORKER_COUNT and HEALTH_CHECK_INTERVAL as seed 002 names them', () => {
    const c = loadConfig({ env: { PORT: '9090', WORKER_COUNT: '2', HEALTH_CHECK_INTERVAL: '30000' }, cwd: dirWith() });
    expect(c.proxy).toMatchObject({ enabled: true, port: 9090, workers: 2 });
    expect(c.health.intervalMs).toBe(30_000);
  });

  it('without WORKER_COUNT: one worker per core, as seed 002 spawns them', () => {
    const c = loadConfig({ env: { PORT: '9090' }, cwd: dirWith() });
    expect(c.proxy.workers).toBe(availableParallelism());
  });

  it('WORKER_COUNT=0 means one per core', () => {
    const c = loadConfig({ env: { PORT: '9090', WORKER_COUNT: '0' }, cwd: dirWith() });
    expect(c.proxy.workers).toBeGreaterThanOrEqual(1);
  });

  it('--backends names the file; entries before the YAML ones', () => {
    const dir = dirWith();
    const file = join(dir, 'b.json');
    writeFileSync(file, JSON.stringify({ backends: [{ host: '127.0.0.1', port: 4000, pool: 'media', weight: 50 }] }));
    const c = loadConfig({ env: {}, backendsFile: file, cwd: dir });
    expect(c.proxy.backends).toEqual([{ host: '127.0.0.1', port: 4000, pool: 'media', weight: 50 }]);
  });

  it('refuses a bad backends file with one message per problem, naming the file and the entry', () => {
    const dir = dirWith({ backends: [{ host: '127.0.0.1', port: 0 }, { host: '', port: 80 }, { host: 'a', port: 1, colour: 'red' }] });
    let problems: string[] = [];
    try {
      loadConfig({ env: {}, cwd: dir });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems.some((p) => p.startsWith('backends[0].port') && p.includes('backends.json'))).toBe(true);
    expect(problems.some((p) => p.startsWith('backends[1].host'))).toBe(true);
    expect(problems.some((p) => p.startsWith('backends[2]') && p.includes('unknown key'))).toBe(true);
  });

  it('refuses a file that is not JSON or has no backends list', () => {
    expect(() => loadConfig({ env: {}, cwd: dirWith('{not json') })).toThrow(/not valid JSON/);
    expect(() => loadConfig({ env: {}, cwd: dirWith({ servers: [] }) })).toThrow(/expected \{"backends"/);
    expect(() => loadConfig({ env: {}, backendsFile: '/nonexistent/b.json', cwd: dirWith() })).toThrow(/cannot read it \(ENOENT\)/);
  });

  it('checks the proxy section like every other', () => {
    expect(() => loadConfig({ env: { PORT: 'eighty' }, cwd: dirWith() })).toThrow(/proxy\.port \(env PORT\)/);
  });
});
