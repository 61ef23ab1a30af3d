/**
 * `lkcd verify N`: dump.N opened through the format table and checked
 * whole (every header, record and page against its checksums and its
 * structure, every page decoded), then against the index (each page's
 * CRC32 recorded at save time, the sha256 of the file).
 */
import { CorruptDumpError, DegradedResult, hex } from '../src/codec/index.js';
import { GarbageBound, PAGE_SIZE_N } from '../src/machine/index.js';
import { openDump, type DumpIntegrity, type DumpProblem } from '../src/dump/index.js';
import { DumpIndex } from '../src/store/index.js';
import { openIndexedDump } from './query.js';
import { missingText, pagesFailingIndexCrc, sha256File, truncationNote } from './save.js';

export interface VerifyReport {
  /** The one line of normal output. */
  line: string;
  /** The dump is TRUNCATED (DUMP_TRUNCATED) or DAMAGED (DUMP_DAMAGED): thrown by the CLI after the line. */
  degraded?: DegradedResult;
  integrity: DumpIntegrity;
  /** PFNs named damaged, by the dump's own checks or by the index's CRC32s. */
  damaged: bigint[];
}

/** The first problem worth naming: a page's when there is one. */
export function firstProblem(problems: readonly DumpProblem[]): DumpProblem | undefined {
  return problems.find((p) => p.pfn !== null) ?? problems[0];
}

/** What the dump's own checks found, and its page counts. */
interface DumpFindings {
  found: DumpIntegrity;
  pages: number;
  compressed: number;
}

/**
 * Opens dump.N and checks it whole. A function of its own: the reader's
 * record table is garbage once it returns.
 */
function checkDump(file: string, onProgress?: (done: bigint, total: bigint) => void): DumpFindings {
  const dump = openDump(file, { mode: 'salvage', verifyPages: true, onProgress });
  try {
    let compressed = 0;
    const found = dump.integrity();
    const pages = dump.attrs['dump.pages'];
    if (dump.compressed) for (const pfn of dump.pages()) if (dump.compressed(pfn)) compressed++;
    return { found, pages, compressed };
  } finally {
    dump.close();
  }
}

/** Index rows between full collections while they are checked (see GarbageBound): about 5 MiB of them. */
const ROWS_PER_COLLECTION = 16384;

/** `rows`, with a full collection each ROWS_PER_COLLECTION of them. */
function* collected<T>(rows: Iterable<T>): Generator<T> {
  const bound = new GarbageBound(ROWS_PER_COLLECTION, 'full');
  for (const r of rows) {
    bound.note(1);
    yield r;
  }
}

/** The pages whose data no longer has the CRC32 the index recorded at save time. */
function checkIndexCrcs(dumpdir: string, n: number, file: string): ReturnType<typeof pagesFailingIndexCrc> {
  const index = DumpIndex.open(dumpdir, { readonly: true });
  try { return pagesFailingIndexCrc(file, collected(index.iteratePages(n))); } finally { index.close(); }
}

export function verifySavedDump(dumpdir: string, n: number, onProgress?: (done: bigint, total: bigint) => void): VerifyReport {
  const o = openIndexedDump(dumpdir, n);
  const file = o.file;
  const rec = o.rec;
  o.close();
  // The dump's own checks, then the index's: one after the other, each one's memory let go before the next.
  const { found, pages, compressed } = checkDump(file, onProgress);
  const crcBad = checkIndexCrcs(dumpdir, rec.n, file);
  const sha = sha256File(file);
  const problems = found.problems;
  const checks = found.checksum === 'verified' ? 'checksums match' : found.checksum === 'failed' ? 'checksums FAIL' : 'no checksums in the dump (unverified)';
  const shaText = sha === rec.sha256 ? 'sha256 matches' : 'sha256 DIFFERS from the index';
  if (problems.length === 0 && crcBad.length === 0) {
    if (sha !== rec.sha256) throw new CorruptDumpError(`${file}: sha256 ${sha} does not match the index (${rec.sha256}): it is not the dump that was saved (run lkcd reindex)`, { file });
    if (pages !== rec.pages) throw new CorruptDumpError(`${file}: ${pages} pages, the index says ${rec.pages}`, { file });
    const missing = found.ranges.filter((r) => r.reason !== 'dumper').reduce((x, r) => x + Number(r.end - r.start), 0);
    const notes = found.notes.join('\n');
    const line = `dump ${rec.n}: ${pages} pages verified (${compressed} compressed, ${pages - compressed} raw), ${checks}, ${shaText}${found.state === 'truncated' ? `; TRUNCATED dump: ${missingText(missing, notes)}` : ''}`;
    const degraded = found.state === 'truncated'
      ? new DegradedResult('DUMP_TRUNCATED', `dump ${rec.n} is TRUNCATED: ${missingText(missing, notes)}${missing > 0 || truncationNote(notes) === null ? ` (lkcd show ${rec.n} lists them by reason)` : ''}`, { file })
      : undefined;
    return { line, degraded, integrity: found, damaged: [] };
  }
  const bad = [...new Set<bigint>([...problems.filter((p) => p.pfn !== null).map((p) => p.pfn!), ...crcBad.map((b) => b.pfn)])]
    .sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const shown = bad.slice(0, 8).map((p) => hex(p * PAGE_SIZE_N));
  const structures = problems.filter((p) => p.pfn === null).length;
  const line = `dump ${rec.n}: ${pages - crcBad.length} pages verified (${compressed} compressed, ${pages - compressed} raw), ${checks}, ${shaText}; ` +
    `DAMAGED: ${bad.length} page${bad.length === 1 ? '' : 's'} fail their checks${shown.length ? ` (paddr ${shown.join(', ')}${bad.length > shown.length ? ', ...' : ''})` : ''}` +
    `${structures ? `, ${structures} structure${structures === 1 ? '' : 's'} damaged` : ''}`;
  const first = firstProblem(problems);
  const b = crcBad[0];
  const what = first
    ? `${first.pfn !== null ? `page ${hex(first.pfn)} (paddr ${hex(first.pfn * PAGE_SIZE_N)}) ` : ''}at offset ${hex(first.offset)}: ${first.error.message}`
    : `page ${hex(b.pfn)} (paddr ${hex(b.pfn * PAGE_SIZE_N)}) at offset ${hex(b.offset)}: its data no longer has the CRC32 the index recorded at save time`;
  const degraded = new DegradedResult('DUMP_DAMAGED', `${file}: ${bad.length} page${bad.length === 1 ? '' : 's'} damaged; first: ${what}`, { file });
  return { line, degraded, integrity: found, damaged: bad };
}
