import { DumpError, type DumpErrorCode } from '../codec/index.js';

/** Exit status for each error code (sysexits.h values). */
export const EXIT_CODES: Record<DumpErrorCode, number> = {
  USAGE: 64,      // EX_USAGE
  CORRUPT: 65,    // EX_DATAERR
  TRUNCATED: 65,
  FAULT: 65,
  NOINPUT: 66,    // EX_NOINPUT
  UNSUPPORTED: 69, // EX_UNAVAILABLE
  INTERNAL: 70,   // EX_SOFTWARE
  IO: 74,         // EX_IOERR
  BUSY: 75,       // EX_TEMPFAIL: another command holds the machine; try again
  // Degraded results (below sysexits' range): the work was done, what it kept is incomplete.
  DUMP_TRUNCATED: 3, // the dump written, saved or verified is TRUNCATED: pages missing, each listed
  DUMP_DAMAGED: 4,   // pages of the dump are damaged, each named; every other page is good
  DEVICE_IO: 5,      // the dump device failed: the dump on it is cut short, the rest is kept for a retry
  DUMP_LOST: 6,      // a crash lost the dump (no kernel to kexec into, or the driver was not armed)
};

/** The one line printed for an error: the message chain, with the place when it adds something. */
export function formatError(err: DumpError): string {
  const w = err.where;
  const at: string[] = [];
  if (w.struct && w.field && !err.message.includes(`${w.struct}.${w.field}`)) at.push(`${w.struct}.${w.field}`);
  if (w.offset !== undefined && !err.message.includes('offset')) at.push(`at offset 0x${w.offset.toString(16)}`);
  return at.length ? `${err.message} (${at.join(' ')})` : err.message;
}

export function exitCodeOf(err: DumpError): number {
  return EXIT_CODES[err.code];
}
