import { InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { StoreUnavailableError } from '../store/store.js';
import { createLogger, startSwitchboard } from '../switchboard.js';

/** commander argument parser for a port number. */
export const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
};

/** The configuration from the file (if any) and the environment; a bad one exits 2 naming each value. */
export function loadConfigOrExit(configFile: string | undefined, backendsFile?: string): Config {
  try {
    return loadConfig({ ...(configFile ? { file: configFile } : {}), ...(backendsFile ? { backendsFile } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`switchboard: ${err.message}\nFix the values above (see README.md, "Configuration") and start again.`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * Runs the service until SIGTERM/SIGINT: starts it (exit 1 with what to do when it cannot), then
 * shuts down gracefully and exits 0 (1 if that takes longer than server.shutdownTimeoutMs).
 */
export async function serveUntilSignalled(config: Config): Promise<void> {
  const logger = createLogger(config);
  let sb;
  try {
    sb = await startSwitchboard(config, logger);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof StoreUnavailableError) console.error(`switchboard: ${e.message}`);
    else if (e.code === 'EADDRINUSE_PROXY') console.error(`switchboard: ${e.message}`);
    else if (e.code === 'EADDRINUSE') console.error(`switchboard: port ${config.server.port} is in use; set APP_PORT (or --port) to a free port`);
    else console.error(`switchboard: failed to start: ${e.stack ?? e.message}`);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), config.server.shutdownTimeoutMs);
    force.unref();
    sb.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
