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
