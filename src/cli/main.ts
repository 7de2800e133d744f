import { ConfigError } from '../config/load-config.js';
import { FURROW_VERSION } from '../protocol/version.js';
import { tokenCommand, tokenHelp, userCommand, userHelp } from './account-commands.js';
import { doctorCommand, doctorHelp } from './doctor-command.js';
import { keysCommand, keysHelp } from './keys-command.js';
import { lintCommand, lintHelp } from './lint-command.js';
import { migrateCommand, migrateHelp } from './migrate-command.js';
import { preflightCommand, preflightHelp } from './preflight-command.js';
import { runnerCommand, runnerHelp } from './runner-command.js';
import { startCommand, startHelp } from './start-command.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';

const HELP = `Usage: furrow COMMAND [options]

Commands:
  start                 run the server, workers, a local runner (and embedded PostgreSQL)
  migrate               apply pending database migrations
  user create           create a user (--email E --password-stdin [--admin])
  token create          create an API token for a user (--email E --name N)
  runner                run a runner that connects to a server (--url U --token-file F …)
  runner list           list every runner with its state, labels and jobs
  runner token create   create a registration token for runners (--uses N --expires 1h)
  runner token list     list registration tokens with their uses and last use
  runner token revoke   revoke a registration token (ID)
  keys rekey [--yes]    give every repository a new deploy key
  keys rekey-missing    new deploy keys where they are missing or cannot be opened
  doctor [--fix]        check this host: Node.js, database, data dir, executors, job users, cgroups
  lint FILE...          check workflow files (.furrow/*.yml) and print their problems
  preflight --once      poll every polled repository now and start what its changes start

Settings come from FURROW_* environment variables (and FURROW_CONFIG); see docs/configuration.md.
Run "furrow COMMAND --help" for a command's options, "furrow --version" for the version.`;

/** A command without options or subcommands: anything after its name is a mistake. */
function noArguments(help: string, run: () => Promise<number>) {
  return (args: string[]) => {
    if (parseFlags(args, {}).positionals.length > 0) throw new UsageError(help);
    return run();
  };
}

const COMMANDS: Record<string, { help: string; run: (args: string[]) => Promise<number> }> = {
  start: { help: startHelp, run: noArguments(startHelp, startCommand) },
  migrate: { help: migrateHelp, run: noArguments(migrateHelp, migrateCommand) },
  user: { help: userHelp, run: userCommand },
  token: { help: tokenHelp, run: tokenCommand },
  runner: { help: runnerHelp, run: runnerCommand },
  keys: { help: keysHelp, run: keysCommand },
  doctor: { help: doctorHelp, run: doctorCommand },
  lint: { help: lintHelp, run: lintCommand },
  preflight: { help: preflightHelp, run: preflightCommand },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${HELP}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`furrow ${FURROW_VERSION}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`furrow: unknown command "${name}"\n\n${HELP}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${command.help}\n`);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`furrow ${name}: ${(err as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`furrow ${name}: ${(err as Error).message}\n`);
    return 1;
  }
}
