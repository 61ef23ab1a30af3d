import { lockMachine, type MachineRoot } from '../machine/index.js';

/**
 * Runs one command on a machine under the machine lock, for the whole
 * command (library calls inside take nested holds). Another command
 * holding it: BUSY at once, naming it. A step a killed command left
 * unfinished is rolled back first, and one line on stdout says so.
 */
export async function holdMachine<T>(root: MachineRoot, tool: string, fn: () => T | Promise<T>, opts: { prepare?: boolean } = {}): Promise<T> {
  if (opts.prepare) root.prepare();
  const lock = lockMachine(root);
  try {
    const r = lock.recovered;
    if (r) {
      const what = r.committed ? 'finished the commit of' : 'rolled back';
      const restored = r.committed ? '' : ` (${r.pages} pages${r.files.length ? `, ${r.files.join(', ')}` : ''}${r.imageRestored ? ', the RAM image it replaced' : ''} restored)`;
      process.stdout.write(`${tool}: ${what} the step ${r.command ? `'${r.command}' ` : ''}that pid ${r.owner.pid} left unfinished${restored}\n`);
    }
    return await fn();
  } finally {
    lock.release();
  }
}
