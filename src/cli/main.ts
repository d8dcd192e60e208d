import { Command, Option } from 'commander';
import { version } from '../switchboard.js';
import { addAgentCommand } from './agent.js';
import { addHaproxyCommands } from './haproxy.js';
import { loadConfigOrExit, port, serveUntilSignalled } from './serve.js';
import { addStatusCommand } from './status.js';

const program = new Command();
program.name('switchboard').description('Load balancer for real-time media infrastructure').version(version);

program
  .command('serve')
  .description('run the Switchboard service (control-plane API, health checks, placement)')
  .option('-c, --config-file <file>', 'YAML configuration file (environment variables override it)')
  .option('-p, --port <port>', 'API port (overrides APP_PORT)', port)
  .option('-b, --backends <file>', "seed 002's backends file ({\"backends\":[{\"host\",\"port\"}]}; default: config/backends.json when present)")
  .addOption(new Option('--data-plane <plane>', 'haproxy: drive HAProxy as the data plane (see "HAProxy mode")').choices(['none', 'haproxy']))
  .action(async (opts: { configFile?: string; port?: number; dataPlane?: string; backends?: string }) => {
    const config = loadConfigOrExit(opts.configFile, opts.backends);
    if (opts.port !== undefined) config.server.port = opts.port;
    if (opts.dataPlane !== undefined) config.haproxy.enabled = opts.dataPlane === 'haproxy';
    await serveUntilSignalled(config);
  });

addAgentCommand(program);
addHaproxyCommands(program);
addStatusCommand(program);

await program.parseAsync(process.argv);
