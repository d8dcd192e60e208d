import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import { StoreUnavailableError } from '../store/store.js';
import { createLogger, startSwitchboard, version } from '../switchboard.js';
import { addHaproxyCommands } from './haproxy.js';
import { addAgentCommand } from './agent.js';

const program = new Command();
program.name('switchboard').description('Load balancer for real-time media infrastructure').version(version);

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
};

program
  .command('serve')
  .description('run the Switchboard service (control-plane API, health checks, placement)')
  .option('-c, --config-file <file>', 'YAML configuration file (environment variables override it)')
  .option('-p, --port <port>', 'API port (overrides APP_PORT)', port)
  .addOption(new Option('--data-plane <plane>', 'haproxy: drive HAProxy as the data plane (see "HAProxy mode")').choices(['none', 'haproxy']))
  .action(async (opts: { configFile?: string; port?: number; dataPlane?: string }) => {
    let config;
    try {
      config = loadConfig({ ...(opts.configFile ? { file: opts.configFile } : {}) });
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`switchboard: ${err.message}\nFix the values above (see README.md, "Configuration") and start again.`);
        process.exit(2);
      }
      throw err;
    }
    if (opts.port !== undefined) config.server.port = opts.port;
    if (opts.dataPlane !== undefined) config.haproxy.enabled = opts.dataPlane === 'haproxy';
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

addAgentCommand(program);

addHaproxyCommands(program);

await program.parseAsync(process.argv);
