import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { defaultPaths, renderHaproxyConfig } from '../haproxy/config.js';
import { checkConfigFile } from '../haproxy/process.js';
import { StoreUnavailableError } from '../store/store.js';
import { createLogger, startSwitchboard } from '../switchboard.js';

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
};

function load(configFile: string | undefined): Config {
  try {
    return loadConfig({ ...(configFile ? { file: configFile } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`switchboard: ${err.message}\nFix the values above (see README.md, "Configuration") and start again.`);
      process.exit(2);
    }
    throw err;
  }
}

/** `switchboard haproxy-config` (print the configuration) and `switchboard haproxy` (serve with HAProxy as the data plane). */
export function addHaproxyCommands(program: Command): void {
  program
    .command('haproxy-config')
    .description("print the haproxy.cfg Switchboard runs in HAProxy mode (from the same config file and environment as serve)")
    .option('-c, --config-file <file>', 'YAML configuration file (environment variables override it)')
    .option('--check', 'also run `haproxy -c` on it (exit 1 when HAProxy refuses it)')
    .action(async (opts: { configFile?: string; check?: boolean }) => {
      const config = load(opts.configFile);
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
      const config = load(opts.configFile);
      if (opts.port !== undefined) config.server.port = opts.port;
      config.haproxy.enabled = true;
      const logger = createLogger(config);
      let sb;
      try {
        sb = await startSwitchboard(config, logger);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (err instanceof StoreUnavailableError) console.error(`switchboard: ${e.message}`);
        else if (e.code === 'EADDRINUSE') console.error(`switchboard: port ${config.server.port} is in use; set APP_PORT (or --port) to a free port`);
        else console.error(`switchboard: failed to start: ${e.stack ?? e.message}`);
        process.exit(1);
      }
      const shutdown = (signal: string) => {
        logger.info({ signal }, 'shutting down');
        const force = setTimeout(() => process.exit(1), config.server.shutdownTimeoutMs);
        force.unref();
        void sb.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
}
