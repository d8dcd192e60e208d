import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { defaultPaths, renderHaproxyConfig } from '../haproxy/config.js';
import { checkConfigFile } from '../haproxy/process.js';
import { loadConfigOrExit, port, serveUntilSignalled } from './serve.js';

/** `switchboard haproxy-config` (print the configuration) and `switchboard haproxy` (serve with HAProxy as the data plane). */
export function addHaproxyCommands(program: Command): void {
  program
    .command('haproxy-config')
    .description("print the haproxy.cfg Switchboard runs in HAProxy mode (from the same config file and environment as serve)")
    .option('-c, --config-file <file>', 'YAML configuration file (environment variables override it)')
    .option('--check', 'also run `haproxy -c` on it (exit 1 when HAProxy refuses it)')
    .action(async (opts: { configFile?: string; check?: boolean }) => {
      const config = loadConfigOrExit(opts.configFile);
      const text = renderHaproxyConfig(config.haproxy, defaultPaths(config.haproxy));
      process.stdout.write(text);
      if (!opts.check) return;
      const dir = await mkdtemp(join(tmpdir(), 'sb-haproxy-check-'));
      try {
        const file = join(dir, 'haproxy.cfg');
        // The room map must exist for the check; an empty one stands in.
        await writeFile(join(dir, 'empty.map'), '');
        await writeFile(file, text.replace(`map(${defaultPaths(config.haproxy).mapFile})`, `map(${join(dir, 'empty.map')})`));
        console.error(await checkConfigFile(config.haproxy.binary, file));
      } catch (err) {
        console.error(`switchboard: ${(err as Error).message}`);
        process.exitCode = 1;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

  program
    .command('haproxy')
    .description('run Switchboard with HAProxy as its data plane (same as serve --data-plane haproxy)')
    .option('-c, --config-file <file>', 'YAML configuration file (environment variables override it)')
    .option('-p, --port <port>', 'API port (overrides APP_PORT)', port)
    .action(async (opts: { configFile?: string; port?: number }) => {
      const config = loadConfigOrExit(opts.configFile);
      if (opts.port !== undefined) config.server.port = opts.port;
      config.haproxy.enabled = true;
      await serveUntilSignalled(config);
    });
}
