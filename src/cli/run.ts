import { DumpError, wrapError } from '../codec/index.js';
import { exitCodeOf, formatError } from './exit.js';

/**
 * Runs a CLI's main, catching once: prints exactly one line to stderr and
 * exits with the code table's status. Stacks only with --debug or LKCD_DEBUG=1.
 */
export async function runCli(name: string, main: () => Promise<void> | void): Promise<void> {
  // A reader that stops early (`| head`) is not an error: stop quietly, as a C tool dies of SIGPIPE.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  const debug = process.argv.includes('--debug') || process.env.LKCD_DEBUG === '1';
  try {
    await main();
  } catch (e) {
    const err = e instanceof DumpError ? e : wrapError(name, e);
    process.stderr.write(`${name}: ${formatError(err)}\n`);
    if (debug) process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = exitCodeOf(err);
  }
}
