import fs from 'node:fs';
import path from 'node:path';
import { DumpError, ioError } from '../codec/index.js';
import { recoverAbandonedStep, type RollbackReport } from './journal.js';
import { processAlive, sameProcess, selfIdentity, type ProcessIdentity } from './process_identity.js';
import type { MachineRoot } from './root.js';

/** The lock file under lib/machine/. */
export const MACHINE_LOCK_FILE = 'lock';
/** Longest command line kept in the lock (it is only for the message a second command prints). */
const COMMAND_MAX = 512;

/** Who holds a machine: the process (pid and start time) and its command line. */
export interface LockHolder extends ProcessIdentity {
  command: string;
}

/** A hold on the machine lock. `release` gives it back if this hold took it; nested holds release nothing. */
export interface MachineLock {
  /** This hold created the lock (the outermost in its process). */
  readonly outer: boolean;
  /** The step a dead holder left unfinished, rolled back when this hold took its lock over. */
  readonly recovered: (RollbackReport & { command: string | null }) | null;
  release(): void;
}

function lockPath(root: MachineRoot): string {
  return path.join(root.machineDir, MACHINE_LOCK_FILE);
}

/** This process's command line, as `ps` would show it, for the lock. */
export function commandLine(): string {
  const [, script, ...args] = process.argv;
  const name = script ? path.basename(script).replace(/\.(js|ts)$/, '') : 'node';
  const tool = name === 'main' ? path.basename(path.dirname(script)) : name;
  return [tool, ...args.filter((a, i, all) => a !== '--root' && all[i - 1] !== '--root')].join(' ').slice(0, COMMAND_MAX);
}

function encodeHolder(h: LockHolder): string {
  return `pid ${h.pid}\nstart ${h.start}\ncommand ${h.command.replace(/\n/g, ' ')}\n`;
}

/** Parses a lock file; a lock that is not ours to read names no live process. */
function decodeHolder(text: string): LockHolder {
  const m = /^pid (\d+)\nstart (\d+)\ncommand (.*)\n$/.exec(text);
  if (!m) return { pid: 0, start: 0n, command: '(unreadable lock)' };
  return { pid: Number(m[1]), start: BigInt(m[2]), command: m[3] };
}

/** The holder of the machine lock, or null when the machine is not locked. */
export function readMachineLock(root: MachineRoot): LockHolder | null {
  try {
    return decodeHolder(fs.readFileSync(lockPath(root), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading the machine lock', e as NodeJS.ErrnoException);
  }
}

/**
 * Takes the machine lock (lib/machine/lock: holder pid, start time and
 * command line, created atomically with link(2) of a file already
 * written). Reentrant: a process that holds it gets a nested hold. Held by
 * another live process, it fails at once with BUSY naming the holder; left
 * by a dead one, it is taken over and the step that process left
 * unfinished is rolled back. Never waits.
 */
export function lockMachine(root: MachineRoot, command = commandLine()): MachineLock {
  if (!fs.existsSync(root.machineDir)) {
    throw new DumpError('NOINPUT', `no machine at ${root.dir} (run 'machine power-on' first)`, { file: root.statePath });
  }
  const file = lockPath(root);
  const me: LockHolder = { ...selfIdentity(), command };
  const mine = encodeHolder(me);
  for (let attempt = 0; attempt < 8; attempt++) {
    const tmp = path.join(root.machineDir, `.lock.${me.pid}`);
    try {
      fs.writeFileSync(tmp, mine, { mode: 0o600 });
      try {
        fs.linkSync(tmp, file);
      } finally {
        fs.rmSync(tmp, { force: true });
      }
      // Ours. Whatever step a dead holder left is undone before anything reads the machine.
      let recovered: MachineLock['recovered'] = null;
      try {
        const r = recoverAbandonedStep(root.ramPath);
        if (r) recovered = { ...r, command: null };
        removeDeadTemporaries(root.machineDir);
      } catch (e) {
        releaseIfMine(file, mine);
        throw e;
      }
      return { outer: true, recovered, release: () => releaseIfMine(file, mine) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        if (e instanceof DumpError) throw e;
        throw ioError('locking the machine', e as NodeJS.ErrnoException);
      }
    }
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw ioError('reading the machine lock', e as NodeJS.ErrnoException);
    }
    const holder = decodeHolder(text);
    if (sameProcess(holder, me)) return { outer: false, recovered: null, release: () => undefined };
    if (processAlive(holder)) {
      throw new DumpError('BUSY', `the machine at ${root.dir} is busy: pid ${holder.pid} is running '${holder.command}'; try again when it has finished`, { file });
    }
    // A dead holder's lock: move it aside (one taker wins the rename), check it is the one judged dead.
    const aside = path.join(root.machineDir, `.lock.stale.${me.pid}`);
    try {
      fs.renameSync(file, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw ioError('taking over the machine lock', e as NodeJS.ErrnoException);
    }
    const taken = fs.readFileSync(aside, 'utf8');
    if (taken !== text) {
      // Someone took the lock between our read and the rename: put theirs back.
      try { fs.linkSync(aside, file); } catch { /* a third process got in: it holds the lock */ }
    }
    fs.rmSync(aside, { force: true });
    if (taken === text) {
      // Take it now, recovering on the way; say whose step was undone.
      const hold = lockMachine(root, command);
      return hold.recovered ? { ...hold, recovered: { ...hold.recovered, command: holder.command } } : hold;
    }
  }
  throw new DumpError('BUSY', `the machine at ${root.dir} is busy: its lock keeps changing hands; try again`, { file });
}

/**
 * Temporary files a killed process left under lib/machine/ (a lock being
 * created or taken over, a hardware file being replaced): named with the
 * pid that wrote them, removed once that process is gone.
 */
function removeDeadTemporaries(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = /^\.(?:lock(?:\.stale)?\.|.+\.tmp-)(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    let alive = true;
    try { process.kill(pid, 0); } catch (e) { alive = (e as NodeJS.ErrnoException).code === 'EPERM'; }
    if (!alive) fs.rmSync(path.join(dir, name), { force: true });
  }
}

function releaseIfMine(file: string, mine: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === mine) fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('releasing the machine lock', e as NodeJS.ErrnoException);
  }
}
