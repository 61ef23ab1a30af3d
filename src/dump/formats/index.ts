/**
 * The format table, probed in order as libkdumpfile's formats[] is. The
 * in-place area (inplace.ts) is not in it: it lives in RAM and is opened
 * from the config-block address that crashdump= passes, not from a file.
 */
import { DumpError } from '../../codec/index.js';
import { lkcdFormat } from './lkcd.js';
import { closeDumpFile, openDumpFile, type DumpFormatOps, type ProbedDump } from './types.js';

export * from './types.js';
export * from './lkcd.js';

/** Formats tried by openDump, in order. */
export const DUMP_FORMATS: readonly DumpFormatOps[] = [lkcdFormat];

/**
 * Opens `path` with the first format whose probe recognises it. A format
 * that recognises the file but finds it broken throws, and that error is
 * what the caller sees; a file no format recognises is UNSUPPORTED.
 */
export function openDump(path: string, formats: readonly DumpFormatOps[] = DUMP_FORMATS): ProbedDump {
  const file = openDumpFile(path);
  try {
    for (const ops of formats) {
      const dump = ops.probe(file);
      if (dump) return dump;
    }
  } catch (e) {
    closeDumpFile(file);
    throw e;
  }
  closeDumpFile(file);
  throw new DumpError('UNSUPPORTED', `${path}: unknown dump format (tried ${formats.map((f) => f.name).join(', ')})`,
    { file: path });
}

/** Closes a dump opened by openDump. */
export function closeDump(dump: ProbedDump): void {
  dump.close();
}
export * from './kdump_compressed.js';
export * from './elf_vmcore.js';
export * from './vmcore_notes.js';
