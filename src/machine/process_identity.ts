import fs from 'node:fs';

/**
 * A process as the machine lock and the undo journal name their owner: its
 * pid and its start time (field 22 of /proc/PID/stat, clock ticks since
 * boot). The pair stays unique when pids are reused, so a lock or journal
 * left by a killed process is never taken for a live one's.
 */
export interface ProcessIdentity {
  pid: number;
  start: bigint;
}

/**
 * starttime of /proc/PID/stat, or null when the process does not exist, is
 * a zombie (killed, not yet reaped: it will never write again), or /proc
 * cannot tell.
 */
function startTimeOf(pid: number): bigint | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // "pid (comm) state ppid ..." where comm may hold spaces and parentheses: count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  const start = fields[22 - 3];
  return start !== undefined && /^\d+$/.test(start) ? BigInt(start) : null;
}

export function selfIdentity(): ProcessIdentity {
  return { pid: process.pid, start: startTimeOf(process.pid) ?? 0n };
}

export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.start === b.start;
}

/** True while the process that `id` names is running: same pid, same start time. */
export function processAlive(id: ProcessIdentity): boolean {
  if (!Number.isInteger(id.pid) || id.pid <= 0) return false;
  if (fs.existsSync('/proc/self/stat')) return startTimeOf(id.pid) === id.start;
  // No /proc: fall back on whether the pid exists at all.
  try {
    process.kill(id.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
