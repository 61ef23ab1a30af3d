/**
 * Typed errors shared by every layer. The CLI maps `code` to an exit status
 * (see src/cli/exit.ts); nothing below the CLI prints or exits.
 */
export type AddressSpace = 'phys' | 'virt';

export type DumpErrorCode =
  | 'CORRUPT'
  | 'TRUNCATED'
  | 'UNSUPPORTED'
  | 'FAULT'
  | 'IO'
  | 'USAGE'
  | 'NOINPUT'
  | 'INTERNAL'
  | 'BUSY'
  // Degraded results: the command did its work, but what it produced or found is incomplete.
  | 'DUMP_TRUNCATED'
  | 'DUMP_DAMAGED'
  | 'DEVICE_IO'
  | 'DUMP_LOST'
  | 'NOT_ARMED';

export const DUMP_ERROR_CODES: readonly DumpErrorCode[] = [
  'CORRUPT', 'TRUNCATED', 'UNSUPPORTED', 'FAULT', 'IO', 'USAGE', 'NOINPUT', 'INTERNAL',
  'BUSY', 'DUMP_TRUNCATED', 'DUMP_DAMAGED', 'DEVICE_IO', 'DUMP_LOST', 'NOT_ARMED',
];

/** The codes of a degraded result (see DegradedResult). */
export type DegradedCode = 'DUMP_TRUNCATED' | 'DUMP_DAMAGED' | 'DEVICE_IO' | 'DUMP_LOST' | 'NOT_ARMED';

/** Where an error happened: enough to find the byte or the field. */
export interface Where {
  file?: string;
  offset?: number | bigint;
  struct?: string;
  field?: string;
  address?: bigint;
  space?: AddressSpace;
}

export class DumpError extends Error {
  constructor(
    readonly code: DumpErrorCode,
    message: string,
    readonly where: Where = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Not a failure of the command but of what it was asked to keep: the dump
 * it wrote, saved or checked is TRUNCATED or damaged, the device failed
 * part-way, or a crash lost the dump. Thrown by a CLI after its normal
 * output, so the one-line stderr report and the documented exit status
 * come from the same place as every error's.
 */
export class DegradedResult extends DumpError {
  constructor(code: DegradedCode, message: string, where: Where = {}) {
    super(code, message, where);
  }
}

/** Input that is the right format but broken. */
export class CorruptDumpError extends DumpError {
  constructor(message: string, where: Where = {}, options?: { cause?: unknown }) {
    super('CORRUPT', message, where, options);
  }
}

/** A structure that ran past the end of its buffer or file. */
export class TruncatedError extends DumpError {
  constructor(message: string, where: Where = {}, options?: { cause?: unknown }) {
    super('TRUNCATED', message, where, options);
  }
}

/** A read of an address nothing backs. */
export class FaultError extends DumpError {
  constructor(message: string, where: Where & { address: bigint }, options?: { cause?: unknown }) {
    super('FAULT', message, where, options);
  }
}

/** A user mistake on the command line or in a config file. */
export class UsageError extends DumpError {
  constructor(message: string, where: Where = {}, options?: { cause?: unknown }) {
    super('USAGE', message, where, options);
  }
}

/** A broken invariant: a bug in this program, never bad input. */
export class InternalError extends DumpError {
  constructor(message: string, where: Where = {}, options?: { cause?: unknown }) {
    super('INTERNAL', `internal error (please report): ${message}`, where, options);
  }
}

/** Adds context in front of an error, keeping its code: "reading X: <cause>". */
export function wrapError(context: string, err: unknown): DumpError {
  if (err instanceof DumpError) {
    return new DumpError(err.code, `${context}: ${err.message}`, err.where, { cause: err });
  }
  const sys = err as NodeJS.ErrnoException;
  if (sys && typeof sys.code === 'string' && typeof sys.syscall === 'string') {
    return ioError(context, sys);
  }
  return new InternalError(`${context}: ${String((err as Error)?.message ?? err)}`, {}, { cause: err });
}

/** Turns a Node system error into a one-line DumpError naming the path. */
export function ioError(context: string, sys: NodeJS.ErrnoException): DumpError {
  const what = sys.code === 'ENOENT' ? 'no such file or directory'
    : sys.code === 'EACCES' || sys.code === 'EPERM' ? 'permission denied'
    : sys.code === 'ENOSPC' ? 'no space left on device'
    : sys.code === 'EROFS' ? 'read-only file system'
    : sys.code === 'ENOTDIR' ? 'not a directory'
    : sys.code === 'EISDIR' ? 'is a directory'
    : (sys.code ?? 'I/O error').toLowerCase();
  const code: DumpErrorCode = sys.code === 'ENOENT' ? 'NOINPUT' : 'IO';
  return new DumpError(code, `${context}${sys.path ? `: ${sys.path}` : ''}: ${what}`,
    sys.path ? { file: sys.path } : {}, { cause: sys });
}
