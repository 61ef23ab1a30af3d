/**
 * The format table, probed in order as libkdumpfile's formats[] is. Every
 * consumer of a saved dump (lkcd save, import, reindex, verify, export,
 * analyze, the queries) opens it here and streams pages(): LKCD from any
 * writer, makedumpfile's kdump-compressed files ("diskdump"), ELF vmcores.
 * The in-place area (inplace.ts) is not in it: it lives in RAM and is
 * opened from the config-block address that crashdump= passes, not from a
 * file.
 */
import { DumpError } from '../../codec/index.js';
import { lkcdFormat } from './lkcd.js';
import { kdumpCompressedFormat } from './kdump_compressed.js';
import { elfVmcoreFormat } from './elf_vmcore.js';
import { openDumpFile, type DumpFormatOps, type DumpSource, type ProbeOptions, type ProbedDump } from './types.js';

export * from './types.js';
export * from './lkcd.js';
export * from './lkcd_ext.js';
export * from './lkcd_walk.js';

/** Formats tried by openDump, in order. */
export const DUMP_FORMATS: readonly DumpFormatOps[] = [lkcdFormat, kdumpCompressedFormat, elfVmcoreFormat];

/**
 * Opens `path` (or a source, which it then owns) with the first format
 * whose probe recognises it. A format that recognises the file but finds
 * it broken throws, and that error is what the caller sees; a file no
 * format recognises is UNSUPPORTED.
 */
export function openDump(path: string | DumpSource, opts: ProbeOptions = {}, formats: readonly DumpFormatOps[] = DUMP_FORMATS): ProbedDump {
  const file = typeof path === 'string' ? openDumpFile(path) : path;
  try {
    for (const ops of formats) {
      const dump = ops.probe(file, opts);
      if (dump) return dump;
    }
  } catch (e) {
    file.close();
    throw e;
  }
  file.close();
  throw new DumpError('UNSUPPORTED', `${file.path}: unknown dump format (tried ${formats.map((f) => f.name).join(', ')})`,
    { file: file.path });
}

/** Closes a dump opened by openDump. */
export function closeDump(dump: ProbedDump): void {
  dump.close();
}
export * from './kdump_compressed.js';
export * from './elf_vmcore.js';
export * from './vmcore_notes.js';
