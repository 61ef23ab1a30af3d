import { InternalError, type DumpError, type DumpErrorCode } from '../codec/index.js';

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
  NOT_ARMED: 7,      // lkcd status: a crash now would not give an LKCD dump (the reason is printed)
};

/**
 * kexec -S, kexec-tools' status option: a kernel of the type asked about is
 * loaded (kexec-tools' k_status(): "Return 1 if the type (by default crash)
 * is loaded, 0 if not"). Not an error: a status, printed nowhere.
 */
export const EXIT_KEXEC_LOADED = 1;

/** What each exit status means, for --help and the README: one row per status, in order. */
export const EXIT_STATUS_MEANINGS: ReadonlyArray<{ status: number; meaning: string }> = [
  { status: 0, meaning: 'success' },
  { status: EXIT_KEXEC_LOADED, meaning: 'kexec -S: a kernel of that type is loaded (kexec-tools\' -S)' },
  { status: EXIT_CODES.DUMP_TRUNCATED, meaning: 'the dump is TRUNCATED: pages are missing (listed)' },
  { status: EXIT_CODES.DUMP_DAMAGED, meaning: 'the dump has damaged pages (named); the others are good' },
  { status: EXIT_CODES.DEVICE_IO, meaning: 'the dump device failed part-way; the rest is kept for a retry' },
  { status: EXIT_CODES.DUMP_LOST, meaning: 'the crash lost the dump (no kernel loaded, or dumping not armed)' },
  { status: EXIT_CODES.NOT_ARMED, meaning: 'lkcd status: not armed: a crash now would not be dumped (why)' },
  { status: EXIT_CODES.USAGE, meaning: 'usage: a bad option, argument or config value, or a refused path' },
  { status: EXIT_CODES.CORRUPT, meaning: 'corrupt input: a broken or cut-short dump, image, state or record' },
  { status: EXIT_CODES.NOINPUT, meaning: 'missing input: no machine, no such dump or file' },
  { status: EXIT_CODES.UNSUPPORTED, meaning: 'unsupported dump version, page size or compression' },
  { status: EXIT_CODES.INTERNAL, meaning: 'internal error: a bug (please report it with --debug output)' },
  { status: EXIT_CODES.IO, meaning: 'I/O error; also not a directory, a link loop, a FIFO or a device' },
  { status: EXIT_CODES.BUSY, meaning: 'busy: another command holds the machine; try again' },
];

/** Every command can fail these ways. */
const COMMON_STATUSES = [0, EXIT_CODES.USAGE, EXIT_CODES.CORRUPT, EXIT_CODES.NOINPUT, EXIT_CODES.INTERNAL, EXIT_CODES.IO, EXIT_CODES.BUSY];

/**
 * The --help epilogue listing the exit statuses a command can return:
 * `extra` adds to those every command has (degraded results, 69).
 */
export function exitStatusHelp(extra: readonly number[] = []): string {
  const statuses = new Set([...COMMON_STATUSES, ...extra]);
  const unknown = [...statuses].filter((s) => !EXIT_STATUS_MEANINGS.some((r) => r.status === s));
  if (unknown.length) throw new InternalError(`exitStatusHelp: no meaning for exit status ${unknown.join(', ')}`);
  const rows = EXIT_STATUS_MEANINGS.filter((r) => statuses.has(r.status)).map((r) => `  ${String(r.status).padStart(2)}  ${r.meaning}`);
  return ['Exit status:', ...rows, 'Errors are one line on stderr; --debug or LKCD_DEBUG=1 adds the stack.'].join('\n');
}

/**
 * The one line printed for an error: the message chain, with the place when
 * it adds something. Line breaks inside (a file name may hold one) are
 * written as \n, so the report stays one line.
 */
export function formatError(err: DumpError): string {
  const w = err.where;
  const at: string[] = [];
  if (w.struct && w.field && !err.message.includes(`${w.struct}.${w.field}`)) at.push(`${w.struct}.${w.field}`);
  if (w.offset !== undefined && !err.message.includes('offset')) at.push(`at offset 0x${w.offset.toString(16)}`);
  const line = at.length ? `${err.message} (${at.join(' ')})` : err.message;
  return line.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
}

export function exitCodeOf(err: DumpError): number {
  return EXIT_CODES[err.code];
}

/**
 * The statuses beyond the common ones, per CLI and command: the degraded
 * results a command reports, and 69 where a dump file is read. A CLI's
 * own --help lists the union of its commands.
 */
export const COMMAND_EXIT_STATUSES = {
  machine: { panic: [6], oops: [6], sysrq: [6] },
  kexec: { status: [1] },
  lkcd: {
    config: [3, 5], save: [3, 4, 69], verify: [3, 4, 69], reindex: [4, 69],
    show: [69], read: [69], export: [69], analyze: [69], import: [3, 4, 69], status: [7], estimate: [], rm: [], map: [69],
  },
  start: { start: [3, 4, 5, 6, 69] },
} as const satisfies Record<string, Record<string, readonly number[]>>;

export type CliName = keyof typeof COMMAND_EXIT_STATUSES;

/** The --help epilogue of one command of a CLI, or of the whole CLI when `command` is omitted. */
export function cliExitHelp(cli: CliName, command?: string): string {
  const table: Record<string, readonly number[]> = COMMAND_EXIT_STATUSES[cli];
  if (command !== undefined) return exitStatusHelp(table[command] ?? []);
  return exitStatusHelp(Object.values(table).flat());
}
