/**
 * A second LKCD writer, independent of ours: it imports nothing from src/
 * and lays every byte out from the format's facts (shared/reference/
 * lkcd-format-and-softboot.md sections 1.2 to 1.8: the v8/v9 dump_header_t
 * field offsets, the x86_64 dump_header_asm_t of include/asm-x86_64/dump.h
 * for any NR_CPUS, dump_page_t, the kernel's RLE flush table) and from
 * libkdumpfile's tests/mklkcd.c, whose choices it can copy (dh_memory_size
 * 0, a 256 KiB dh_dump_buffer_size, RLE runs of N copies). It writes what
 * our writer never does: other NR_CPUS, pages in any order with gaps, no
 * END record, RLE in either convention, a record left damaged.
 */
import zlib from 'node:zlib';

export const PAGE = 4096;
const DUMP_MAGIC_NUMBER = 0xa8190173618f23edn;
const DUMP_ASM_MAGIC_NUMBER = 0xdeaddeadn;
const DUMP_ASM_VERSION_NUMBER = 2;
const DUMP_DH_RAW = 0x1;
const DUMP_DH_COMPRESSED = 0x2;
const DUMP_DH_END = 0x4;
/** dump_header_t: 734 bytes in v8, 742 in v9 (dh_dump_buffer_size added at 734). */
const HEADER_SIZE = { 8: 734, 9: 742 } as const;
/** Records of a v8 dump start here (LKCD_OFFSET_TO_FIRST_PAGE). */
const V8_FIRST_PAGE = 65536;
/** struct pt_regs of x86_64: 21 u64, r15 first; rip is the 17th, rsp the 20th. */
const PT_REGS = 168;
const RIP = 16 * 8;
const RSP = 19 * 8;
const DUMP_PAGE = 16;

/** 'rle-kernel': 00 N V = N + 1 copies (dump_rle.c); 'rle-libkdumpfile': N copies (libkdumpfile's uncompress_rle). */
export type ForeignCompress = 'none' | 'rle-kernel' | 'rle-libkdumpfile' | 'gzip';

export interface ForeignPage {
  pfn: number;
  /** PAGE bytes. */
  data: Uint8Array;
}

export interface ForeignSpec {
  version: 8 | 9;
  nrCpus: number;
  compress: ForeignCompress;
  /** Written in this order. */
  pages: readonly ForeignPage[];
  /** Write the END record (default true). */
  end?: boolean;
  /** v9 dh_dump_buffer_size, where the first record is (default 256 KiB, as mklkcd.c). */
  bufferSize?: number;
  /** dh_memory_size in pages (default 0, as mklkcd.c writes it). */
  memoryPages?: bigint;
  release?: string;
  nodename?: string;
  panic?: string;
  time?: bigint;
  /** Cut the file to this many bytes after writing it. */
  cutAt?: number;
}

export interface ForeignRecord { pfn: number; offset: number; size: number; flags: number }

export interface ForeignDump {
  bytes: Buffer;
  records: ForeignRecord[];
  /** Offset of the END record, or null. */
  endOffset: number | null;
  /** What the per-CPU arrays hold for CPU i (to check they are read at the right offsets). */
  cpu(i: number): { rip: bigint; rsp: bigint; task: bigint; stack: bigint; stackPtr: bigint };
  /** dha_header_size: 192 + 192 * NR_CPUS. */
  asmSize: number;
}

/** Runs of equal bytes, at most `max` long. */
function* runs(page: Uint8Array, max: number): Generator<[number, number]> {
  for (let i = 0; i < page.length;) {
    let j = i + 1;
    while (j < page.length && j - i < max && page[j] === page[i]) j++;
    yield [page[i], j - i];
    i = j;
  }
}

/** The kernel's encoder (section 1.8's flush table): a run of L <= 256 bytes has count L - 1. */
export function rleKernel(page: Uint8Array): Buffer {
  const out: number[] = [];
  for (const [v, len] of runs(page, 256)) {
    const count = len - 1;
    if (count >= 2) out.push(0, count, v);
    else if (v === 0) out.push(...(count === 0 ? [0, 0] : [0, 1, 0]));
    else out.push(...Array(len).fill(v));
  }
  return Buffer.from(out);
}

/** libkdumpfile's convention: `00 N V` is N copies (N <= 255), `00 00` one zero. */
export function rleLibkdumpfile(page: Uint8Array): Buffer {
  const out: number[] = [];
  for (const [v, len] of runs(page, 255)) {
    if (len >= 3 || (v === 0 && len === 2)) out.push(0, len, v);
    else if (v === 0) out.push(0, 0);
    else out.push(...Array(len).fill(v));
  }
  return Buffer.from(out);
}

/** The page as the writer stores it: compressed when strictly smaller than a page, else raw. */
function store(data: Uint8Array, compress: ForeignCompress): { flags: number; bytes: Buffer } {
  const c = compress === 'rle-kernel' ? rleKernel(data)
    : compress === 'rle-libkdumpfile' ? rleLibkdumpfile(data)
    : compress === 'gzip' ? zlib.deflateSync(data, { level: 1 })
    : null;
  return c && c.length > 0 && c.length < PAGE ? { flags: DUMP_DH_COMPRESSED, bytes: c } : { flags: DUMP_DH_RAW, bytes: Buffer.from(data) };
}

const COMPRESS_CODE: Record<ForeignCompress, number> = { none: 0, 'rle-kernel': 1, 'rle-libkdumpfile': 1, gzip: 2 };

function putString(b: Buffer, at: number, len: number, s: string): void {
  b.write(s.slice(0, len - 1), at, 'latin1');
}

/** Builds the dump file's bytes. */
export function foreignLkcd(spec: ForeignSpec): ForeignDump {
  const n = spec.nrCpus;
  const asmSize = 192 + 192 * n;
  const hdrSize = HEADER_SIZE[spec.version];
  const dataOffset = spec.version === 8 ? V8_FIRST_PAGE : spec.bufferSize ?? 256 * 1024;
  if (hdrSize + asmSize > dataOffset) throw new Error(`headers of ${hdrSize + asmSize} bytes do not fit before ${dataOffset}`);
  const cpu = (i: number): ReturnType<ForeignDump['cpu']> => ({
    rip: 0xffffffff81000000n + BigInt(i) * 0x40n, rsp: 0xffffc90000004000n + BigInt(i) * 0x4000n,
    task: 0xffff888000200000n + BigInt(i) * 0x1000n, stack: 0xffffc90000010000n + BigInt(i) * 0x8000n,
    stackPtr: 0xffff888000300000n + BigInt(i) * 0x100n,
  });

  const records: ForeignRecord[] = [];
  const parts: Buffer[] = [];
  let at = dataOffset;
  for (const p of spec.pages) {
    if (p.data.length !== PAGE) throw new Error(`page ${p.pfn} is ${p.data.length} bytes`);
    const s = store(p.data, spec.compress);
    const h = Buffer.alloc(DUMP_PAGE);
    h.writeBigUInt64LE(BigInt(p.pfn) * BigInt(PAGE), 0);
    h.writeUInt32LE(s.bytes.length, 8);
    h.writeUInt32LE(s.flags, 12);
    parts.push(h, s.bytes);
    records.push({ pfn: p.pfn, offset: at, size: s.bytes.length, flags: s.flags });
    at += DUMP_PAGE + s.bytes.length;
  }
  let endOffset: number | null = null;
  if (spec.end !== false) {
    const e = Buffer.alloc(DUMP_PAGE);
    e.writeUInt32LE(DUMP_DH_END, 12);
    parts.push(e);
    endOffset = at;
  }

  const head = Buffer.alloc(dataOffset);
  head.writeBigUInt64LE(DUMP_MAGIC_NUMBER, 0);
  head.writeUInt32LE(spec.version, 8);
  head.writeUInt32LE(hdrSize, 12);
  head.writeUInt32LE(0x2, 16); // dh_dump_level: DUMP_LEVEL_KERN, mklkcd.c's default
  head.writeUInt32LE(PAGE, 20);
  head.writeBigUInt64LE(spec.memoryPages ?? 0n, 24);
  head.writeBigUInt64LE(0xffff888000000000n, 32); // dh_memory_start: PAGE_OFFSET
  head.writeBigUInt64LE(DUMP_MAGIC_NUMBER, 40); // dh_memory_end: the kernel writes the magic there (sic)
  head.writeUInt32LE(spec.pages.length, 48);
  putString(head, 52, 256, spec.panic ?? 'foreign writer test');
  head.writeBigUInt64LE(spec.time ?? 1_700_000_000n, 308);
  head.writeBigUInt64LE(123456n, 316);
  putString(head, 324, 65, 'Linux');
  putString(head, 389, 65, spec.nodename ?? 'elsewhere');
  putString(head, 454, 65, spec.release ?? '2.6.16-foreign');
  putString(head, 519, 65, '#1 SMP');
  putString(head, 584, 65, 'x86_64');
  putString(head, 649, 65, '(none)');
  head.writeBigUInt64LE(cpu(0).task, 714);
  head.writeUInt32LE(COMPRESS_CODE[spec.compress], 722);
  if (spec.version === 9) head.writeBigUInt64LE(BigInt(dataOffset), 734);

  const a = hdrSize;
  head.writeBigUInt64LE(DUMP_ASM_MAGIC_NUMBER, a);
  head.writeUInt32LE(DUMP_ASM_VERSION_NUMBER, a + 8);
  head.writeUInt32LE(asmSize, a + 12);
  head.writeBigUInt64LE(cpu(0).rip, a + 16 + RIP); // dha_regs: the dumping CPU's
  head.writeBigUInt64LE(cpu(0).rsp, a + 16 + RSP);
  head.writeUInt32LE(n, a + 16 + PT_REGS); // dha_smp_num_cpus
  head.writeInt32LE(0, a + 16 + PT_REGS + 4); // dha_dumping_cpu
  const regs = a + 192;
  const tasks = regs + PT_REGS * n;
  const stacks = tasks + 8 * n;
  const stackPtrs = stacks + 8 * n;
  for (let i = 0; i < n; i++) {
    const c = cpu(i);
    head.writeBigUInt64LE(c.rip, regs + PT_REGS * i + RIP);
    head.writeBigUInt64LE(c.rsp, regs + PT_REGS * i + RSP);
    head.writeBigUInt64LE(c.task, tasks + 8 * i);
    head.writeBigUInt64LE(c.stack, stacks + 8 * i);
    head.writeBigUInt64LE(c.stackPtr, stackPtrs + 8 * i);
  }
  let bytes = Buffer.concat([head, ...parts]);
  if (spec.cutAt !== undefined) bytes = bytes.subarray(0, spec.cutAt);
  return { bytes, records, endOffset, cpu, asmSize };
}

/** A deterministic byte stream (xorshift32), independent of the simulator's. */
function stream(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Pages of every kind a dump meets: zero, long runs, short runs of zeros,
 * text, incompressible, and runs mixed with literals, for `pfns`.
 */
export function samplePages(pfns: readonly number[]): ForeignPage[] {
  return pfns.map((pfn, k) => {
    const data = new Uint8Array(PAGE);
    switch (k % 6) {
      case 0: break;
      case 1: for (let i = 0; i < PAGE; i++) data[i] = 0x41 + ((i >> 9) & 7); break;
      case 2: data.set(Buffer.from(`page ${pfn}: ${'the quick brown fox jumps over the lazy dog. '.repeat(90)}`.slice(0, PAGE), 'latin1')); break;
      case 3: data.set(stream(pfn + 1, PAGE)); break;
      case 4: for (let i = 0; i < PAGE; i += 8) data.set(stream(pfn * 7 + i, 3), i); break;
      default: data.set(stream(pfn + 99, 600), 1000); data.fill(0x7f, 2000, 2900); break;
    }
    return { pfn, data };
  });
}
