/**
 * mklkcd: builds LKCD dump files from a readable text spec, as
 * libkdumpfile's tests/mklkcd.c does, so fixtures are reviewable text and
 * every broken byte of a negative test is named in the spec.
 *
 * A spec is one directive per line; `#` starts a comment (outside quotes).
 *
 * Header directives (anywhere; defaults in brackets):
 *   version N               dh_version [9]; 8 writes the 734-byte v8 header
 *   magic number|live|be|0xHEX   dh_magic_number [number]; `be` = DUMP_MAGIC_NUMBER byte-swapped
 *   compress none|rle|gzip|N     dh_dump_compress [none]
 *   page_size N             dh_page_size [4096]
 *   buffer_size N           dh_dump_buffer_size (v9), the first record's offset [65536]
 *   data_offset N           where the first record is written [buffer_size; 65536 for v8]
 *   header_size N           dh_header_size [sizeof the header of the version]
 *   release S | nodename S | sysname S | uts_version S | machine S | domainname S
 *   panic "text"            dh_panic_string
 *   time N                  dh_time.tv_sec
 *   level N | flags N | current_task N | memory_size N
 *   num_pages N|auto        dh_num_pages [auto: the page records written]
 *   asm_magic N | asm_header_size N
 *   reg NAME N              a pt_regs member of dha_regs (ip, sp, bp, ...)
 *
 * Data lines, written in order after the headers:
 *   @ADDR raw|compressed|auto FILL... [OPTION...]
 *       FILL pieces are concatenated: HH*N (byte 0xHH N times), zero[*N],
 *       random:SEED[*N], hex:AABB..; patches u64@OFF=V, u32@OFF=V,
 *       str@OFF="text" apply afterwards. No piece: a zero page. N defaults
 *       to the page size. `compressed` must shrink the page with the dump's
 *       codec (or codec=rle|gzip); `auto` applies the kernel's per-page rule.
 *       OPTIONS: dp_size=N, dp_flags=N (header values; dp_size also sets how
 *       many data bytes are written), codec=rle|gzip, flip=OFF[:MASK] (xor a
 *       byte of the stored data, default mask 0xff).
 *   end [truncated] [dp_flags=N] [dp_size=N]
 *   trailer S-E ...          the LKCDMISS trailer of older dumps, PFN ranges [S, E)
 *   checksums [nolocator] [S-E:REASON ...]
 *                            our extension area (after `end`): listed ranges with a reason
 *                            (did-not-fit, dumper, ...), the checksums of the headers, the END
 *                            record and every page record as written, the terminator; and the
 *                            locator in the header buffer unless `nolocator`
 *   bytes FILL...            raw bytes (e.g. `bytes 6d*1000` for the kernel's 'm' tail)
 *
 * Corruptions, applied to the finished file in order:
 *   flip AT [MASK] | set8 AT V | set32 AT V | set64 AT V | truncate AT
 *   AT is a number or LABEL[+-N]: recK / dataK (the K-th page record's
 *   header / data, 0-based), end, trailer, ext (the extension area), csum
 *   (its LKCDCSUM block), locator, eof.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { viewOf } from '../../src/codec/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW,
  isDumpCompress, makePageCodec, type DumpCompress,
} from '../../src/dump/codecs/index.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_ASM_VERSION_NUMBER, DUMP_DH_TRUNCATED, DUMP_MAGIC_LIVE, DUMP_MAGIC_NUMBER,
  DUMP_MAX_NUM_CPUS, DUMP_RANGE_NAMES,
} from '../../src/dump/lkcd/constants.js';
import { dump_header, type DumpHeader } from '../../src/dump/lkcd/dump_header.js';
import { dump_header_asm } from '../../src/dump/lkcd/dump_header_asm.js';
import { dump_page } from '../../src/dump/lkcd/dump_page.js';
import { dump_header_v8, encodeLkcdMissingTrailer, LKCD_OFFSET_TO_FIRST_PAGE } from '../../src/dump/formats/lkcd.js';
import {
  CsumRecords, LKCD_CSUM_F_LOCATOR, LKCD_EXT_LOCATOR_OFFSET, encodeExtensionArea, encodeLocator, lkcd_csum_head, lkcd_csum_record,
  lkcd_ext_header, lkcd_range, recordCrc32,
} from '../../src/dump/formats/lkcd_ext.js';
import type { DumpRange } from '../../src/dump/formats/types.js';
import { pt_regs, type PtRegs } from '../../src/kernel/structs/pt_regs.js';

// ---- the parsed spec -------------------------------------------------------------------------

export interface MklkcdHeader {
  version: number;
  /** dh_magic_number, or 'be' for DUMP_MAGIC_NUMBER stored big-endian. */
  magic: bigint | 'be';
  compress: number;
  pageSize: number;
  bufferSize: bigint;
  dataOffset?: number;
  headerSize?: number;
  sysname: string;
  nodename: string;
  release: string;
  utsVersion: string;
  machine: string;
  domainname: string;
  panic: string;
  time: bigint;
  level: number;
  flags: number;
  currentTask: bigint;
  memorySize: bigint;
  numPages: number | 'auto';
  asmMagic: bigint;
  asmHeaderSize: number;
  regs: Partial<PtRegs>;
}

export type PageMode = 'raw' | 'compressed' | 'auto';

export type MklkcdItem =
  | { kind: 'page'; address: bigint; mode: PageMode; data: Uint8Array; dpSize?: number; dpFlags?: number;
      codec?: DumpCompress; flips: Array<[number, number]>; line: number }
  | { kind: 'end'; truncated: boolean; dpFlags?: number; dpSize?: number }
  | { kind: 'trailer'; ranges: Array<[bigint, bigint]> }
  | { kind: 'checksums'; ranges: DumpRange[]; locator: boolean }
  | { kind: 'bytes'; data: Uint8Array };

export interface MklkcdCorruption {
  op: 'flip' | 'set8' | 'set32' | 'set64' | 'truncate';
  at: string;
  value: bigint;
  line: number;
}

export interface MklkcdSpec {
  header: MklkcdHeader;
  items: MklkcdItem[];
  corruptions: MklkcdCorruption[];
}

export interface MklkcdRecordInfo {
  kind: 'page' | 'end';
  offset: bigint;
  dataOffset: bigint;
  pfn: bigint | null;
  dpSize: number;
  dpFlags: number;
}

export interface MklkcdResult {
  bytes: Uint8Array;
  /** What a reader must return for each page record written from a whole, unmodified page. */
  pages: Map<bigint, Uint8Array>;
  /** PFNs of the page records in file order. */
  order: bigint[];
  records: MklkcdRecordInfo[];
  endOffset: bigint | null;
  trailerOffset: bigint | null;
  /** Offset of the extension area written by `checksums`, or null. */
  extOffset: bigint | null;
  dataOffset: number;
}

export function defaultHeader(): MklkcdHeader {
  return {
    version: 9, magic: DUMP_MAGIC_NUMBER, compress: DUMP_COMPRESS_NONE, pageSize: 4096,
    bufferSize: BigInt(LKCD_OFFSET_TO_FIRST_PAGE), sysname: 'Linux', nodename: 'mklkcd', release: '5.4.0-test',
    utsVersion: '#1 SMP', machine: 'x86_64', domainname: '(none)', panic: '', time: 0n, level: 0xf, flags: 0,
    currentTask: 0n, memorySize: 0n, numPages: 'auto', asmMagic: DUMP_ASM_MAGIC_NUMBER,
    asmHeaderSize: dump_header_asm.size, regs: {},
  };
}

// ---- parsing --------------------------------------------------------------------------------

class SpecError extends Error {
  constructor(line: number, message: string) {
    super(`mklkcd spec line ${line}: ${message}`);
    this.name = 'SpecError';
  }
}

/** Splits on whitespace outside double quotes and drops a `#` comment. */
function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inQuote) {
      cur += c;
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') inQuote = false;
      continue;
    }
    if (c === '#') break;
    if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
      continue;
    }
    if (c === '"') inQuote = true;
    cur += c;
    has = true;
  }
  if (inQuote) throw new Error('unterminated quote');
  if (has) out.push(cur);
  return out;
}

function num(text: string, line: number): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) throw new SpecError(line, `'${text}' is not a number`);
  return BigInt(text);
}

function small(text: string, line: number): number {
  const v = num(text, line);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new SpecError(line, `'${text}' is too large`);
  return Number(v);
}

function str(text: string): string {
  return text.startsWith('"') ? JSON.parse(text) as string : text;
}

function codecByName(name: string, line: number): DumpCompress {
  const v = { none: DUMP_COMPRESS_NONE, rle: DUMP_COMPRESS_RLE, gzip: DUMP_COMPRESS_GZIP }[name];
  if (v === undefined) throw new SpecError(line, `unknown compression '${name}'`);
  return v;
}

/** xorshift32 bytes from a seed: the same bytes on every run. */
export function randomBytes(seed: number, n: number): Uint8Array {
  let s = (seed >>> 0) || 0x9e3779b9;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/** Parses FILL pieces and patches (see the file comment); returns the page bytes. */
function parseFill(tokens: string[], pageSize: number, line: number): Uint8Array {
  const pieces: Uint8Array[] = [];
  const patches: Array<(b: Uint8Array) => void> = [];
  for (const t of tokens) {
    let m: RegExpExecArray | null;
    if ((m = /^([0-9a-f]{2})\*(0x[0-9a-f]+|\d+)$/i.exec(t))) {
      pieces.push(new Uint8Array(small(m[2], line)).fill(parseInt(m[1], 16)));
    } else if ((m = /^zero(?:\*(0x[0-9a-f]+|\d+))?$/i.exec(t))) {
      pieces.push(new Uint8Array(m[1] ? small(m[1], line) : pageSize));
    } else if ((m = /^random:(\d+)(?:\*(0x[0-9a-f]+|\d+))?$/i.exec(t))) {
      pieces.push(randomBytes(Number(m[1]), m[2] ? small(m[2], line) : pageSize));
    } else if ((m = /^hex:([0-9a-f]*)$/i.exec(t))) {
      if (m[1].length % 2) throw new SpecError(line, `odd number of hex digits in '${t}'`);
      pieces.push(new Uint8Array(Buffer.from(m[1], 'hex')));
    } else if ((m = /^(u64|u32)@(0x[0-9a-f]+|\d+)=(0x[0-9a-f]+|\d+)$/i.exec(t))) {
      const [, type, offText, valText] = m;
      const off = small(offText, line);
      const val = num(valText, line);
      const width = type === 'u64' ? 8 : 4;
      patches.push((b) => {
        if (off + width > b.length) throw new SpecError(line, `${t} is outside the ${b.length}-byte page`);
        if (width === 8) viewOf(b).setBigUint64(off, val, true);
        else viewOf(b).setUint32(off, Number(val), true);
      });
    } else if ((m = /^str@(0x[0-9a-f]+|\d+)=(.*)$/is.exec(t))) {
      const off = small(m[1], line);
      const bytes = Buffer.from(str(m[2]), 'latin1');
      patches.push((b) => {
        if (off + bytes.length > b.length) throw new SpecError(line, `${t} is outside the ${b.length}-byte page`);
        b.set(bytes, off);
      });
    } else {
      throw new SpecError(line, `unknown fill piece '${t}'`);
    }
  }
  const data = pieces.length ? new Uint8Array(Buffer.concat(pieces)) : new Uint8Array(pageSize);
  for (const p of patches) p(data);
  return data;
}

const OPTION = /^(dp_size|dp_flags|codec|flip)=(.+)$/;

/** Parses spec text into a spec; errors name the line. */
export function parseSpec(text: string): MklkcdSpec {
  const header = defaultHeader();
  const items: MklkcdItem[] = [];
  const corruptions: MklkcdCorruption[] = [];
  const pending: Array<{ tokens: string[]; line: number }> = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    let t: string[];
    try {
      t = tokenize(raw);
    } catch (e) {
      throw new SpecError(line, (e as Error).message);
    }
    if (t.length === 0) return;
    const [key, ...args] = t;
    const one = (): string => {
      if (args.length !== 1) throw new SpecError(line, `${key} takes one value`);
      return args[0];
    };
    switch (key) {
      case 'version': header.version = small(one(), line); break;
      case 'magic': {
        const v = one();
        header.magic = v === 'number' ? DUMP_MAGIC_NUMBER : v === 'live' ? DUMP_MAGIC_LIVE : v === 'be' ? 'be' : num(v, line);
        break;
      }
      case 'compress': {
        const v = one();
        header.compress = /^\d/.test(v) ? small(v, line) : codecByName(v, line);
        break;
      }
      case 'page_size': header.pageSize = small(one(), line); break;
      case 'buffer_size': header.bufferSize = num(one(), line); break;
      case 'data_offset': header.dataOffset = small(one(), line); break;
      case 'header_size': header.headerSize = small(one(), line); break;
      case 'release': header.release = str(one()); break;
      case 'nodename': header.nodename = str(one()); break;
      case 'sysname': header.sysname = str(one()); break;
      case 'uts_version': header.utsVersion = str(one()); break;
      case 'machine': header.machine = str(one()); break;
      case 'domainname': header.domainname = str(one()); break;
      case 'panic': header.panic = str(one()); break;
      case 'time': header.time = num(one(), line); break;
      case 'level': header.level = small(one(), line); break;
      case 'flags': header.flags = small(one(), line); break;
      case 'current_task': header.currentTask = num(one(), line); break;
      case 'memory_size': header.memorySize = num(one(), line); break;
      case 'num_pages': { const v = one(); header.numPages = v === 'auto' ? 'auto' : small(v, line); break; }
      case 'asm_magic': header.asmMagic = num(one(), line); break;
      case 'asm_header_size': header.asmHeaderSize = small(one(), line); break;
      case 'reg': {
        if (args.length !== 2 || !(args[0] in pt_regs.offsetOf)) throw new SpecError(line, `reg NAME VALUE with a pt_regs member`);
        header.regs[args[0] as keyof PtRegs] = num(args[1], line);
        break;
      }
      case 'end': {
        const item: MklkcdItem = { kind: 'end', truncated: false };
        for (const a of args) {
          let m: RegExpExecArray | null;
          if (a === 'truncated') item.truncated = true;
          else if ((m = /^dp_flags=(.+)$/.exec(a))) item.dpFlags = small(m[1], line);
          else if ((m = /^dp_size=(.+)$/.exec(a))) item.dpSize = small(m[1], line);
          else throw new SpecError(line, `unknown end option '${a}'`);
        }
        items.push(item);
        break;
      }
      case 'trailer': {
        const ranges = args.map((a): [bigint, bigint] => {
          const m = /^(0x[0-9a-f]+|\d+)-(0x[0-9a-f]+|\d+)$/i.exec(a);
          if (!m) throw new SpecError(line, `trailer range '${a}' is not START-END`);
          return [num(m[1], line), num(m[2], line)];
        });
        items.push({ kind: 'trailer', ranges });
        break;
      }
      case 'checksums': {
        let locator = true;
        const ranges: DumpRange[] = [];
        for (const a of args) {
          if (a === 'nolocator') { locator = false; continue; }
          const m = /^(0x[0-9a-f]+|\d+)-(0x[0-9a-f]+|\d+):([a-z-]+)$/i.exec(a);
          if (!m || !(DUMP_RANGE_NAMES as readonly string[]).includes(m[3])) throw new SpecError(line, `checksums range '${a}' is not START-END:REASON`);
          ranges.push({ start: num(m[1], line), end: num(m[2], line), reason: m[3] as DumpRange['reason'] });
        }
        items.push({ kind: 'checksums', ranges, locator });
        break;
      }
      case 'bytes': pending.push({ tokens: t, line }); items.push({ kind: 'bytes', data: new Uint8Array(0) }); break;
      case 'flip': case 'set8': case 'set32': case 'set64': case 'truncate': {
        const need = key === 'truncate' ? 1 : key === 'flip' ? [1, 2] : 2;
        const okCount = Array.isArray(need) ? need.includes(args.length) : args.length === need;
        if (!okCount) throw new SpecError(line, `wrong number of arguments to ${key}`);
        const value = key === 'flip' ? (args[1] ? num(args[1], line) : 0xffn) : key === 'truncate' ? 0n : num(args[1], line);
        corruptions.push({ op: key, at: args[0], value, line });
        break;
      }
      default:
        if (key.startsWith('@')) {
          pending.push({ tokens: t, line });
          items.push({ kind: 'bytes', data: new Uint8Array(0) });
          break;
        }
        throw new SpecError(line, `unknown directive '${key}'`);
    }
  });
  // Data lines depend on page_size, which may be set on any line: parse them last, in place.
  let p = 0;
  items.forEach((item, i) => {
    if (item.kind !== 'bytes') return;
    const { tokens, line } = pending[p++];
    if (tokens[0] === 'bytes') {
      items[i] = { kind: 'bytes', data: parseFill(tokens.slice(1), header.pageSize, line) };
      return;
    }
    items[i] = parsePageLine(tokens, header.pageSize, line);
  });
  return { header, items, corruptions };
}

function parsePageLine(tokens: string[], pageSize: number, line: number): MklkcdItem {
  const address = num(tokens[0].slice(1), line);
  const mode = tokens[1];
  if (mode !== 'raw' && mode !== 'compressed' && mode !== 'auto') {
    throw new SpecError(line, `page mode '${mode}' is not raw, compressed or auto`);
  }
  const fill: string[] = [];
  const item: Extract<MklkcdItem, { kind: 'page' }> = { kind: 'page', address, mode, data: new Uint8Array(0), flips: [], line };
  for (const t of tokens.slice(2)) {
    const m = OPTION.exec(t);
    if (!m) { fill.push(t); continue; }
    if (m[1] === 'dp_size') item.dpSize = small(m[2], line);
    else if (m[1] === 'dp_flags') item.dpFlags = small(m[2], line);
    else if (m[1] === 'codec') item.codec = codecByName(m[2], line);
    else {
      const f = /^(0x[0-9a-f]+|\d+)(?::(0x[0-9a-f]+|\d+))?$/i.exec(m[2]);
      if (!f) throw new SpecError(line, `flip=OFF[:MASK], not '${m[2]}'`);
      item.flips.push([small(f[1], line), f[2] ? small(f[2], line) : 0xff]);
    }
  }
  item.data = parseFill(fill, pageSize, line);
  return item;
}

// ---- building --------------------------------------------------------------------------------

function encodeHeaders(h: MklkcdHeader, numPages: number, dataOffset: number): Uint8Array {
  const v8 = (h.version & 0xf) === 8;
  const codec = v8 ? dump_header_v8 : dump_header;
  const headerSize = h.headerSize ?? codec.size;
  const out = new Uint8Array(dataOffset);
  const value: DumpHeader = {
    dh_magic_number: h.magic === 'be' ? DUMP_MAGIC_NUMBER : h.magic,
    dh_version: h.version,
    dh_header_size: headerSize,
    dh_dump_level: h.level,
    dh_page_size: h.pageSize,
    dh_memory_size: h.memorySize,
    dh_memory_start: 0xffff888000000000n,
    dh_memory_end: DUMP_MAGIC_NUMBER,
    dh_num_pages: numPages,
    dh_panic_string: h.panic,
    dh_time: { tv_sec: h.time, tv_usec: 0n },
    dh_utsname_sysname: h.sysname,
    dh_utsname_nodename: h.nodename,
    dh_utsname_release: h.release,
    dh_utsname_version: h.utsVersion,
    dh_utsname_machine: h.machine,
    dh_utsname_domainname: h.domainname,
    dh_current_task: h.currentTask,
    dh_dump_compress: h.compress,
    dh_dump_flags: h.flags,
    dh_dump_device: 0,
    dh_dump_buffer_size: h.bufferSize,
  };
  const view = viewOf(out);
  if (v8) {
    const { dh_dump_buffer_size: _unused, ...v8value } = value;
    void _unused;
    dump_header_v8.encode(v8value, view, 0);
  } else {
    dump_header.encode(value, view, 0);
  }
  if (h.magic === 'be') view.setBigUint64(0, DUMP_MAGIC_NUMBER, false);
  if (headerSize + dump_header_asm.size <= out.length) {
    const z = dump_header_asm.zero();
    const regs = { ...z.dha_regs, ...h.regs };
    dump_header_asm.encode({
      ...z,
      dha_magic_number: h.asmMagic,
      dha_version: DUMP_ASM_VERSION_NUMBER,
      dha_header_size: h.asmHeaderSize,
      dha_regs: regs,
      dha_smp_num_cpus: 1,
      dha_dumping_cpu: 0,
      dha_smp_regs: Array.from({ length: DUMP_MAX_NUM_CPUS }, (_, i) => (i === 0 ? regs : z.dha_regs)),
      dha_smp_current_task: Array.from({ length: DUMP_MAX_NUM_CPUS }, (_, i) => (i === 0 ? h.currentTask : 0n)),
    }, view, headerSize);
  }
  return out;
}

/** Stored bytes and dp_flags of a page line, after its mode's compression rule. */
function encodePage(item: Extract<MklkcdItem, { kind: 'page' }>, h: MklkcdHeader): { data: Uint8Array; flags: number } {
  if (item.mode === 'raw') return { data: item.data, flags: DUMP_DH_RAW };
  const id = item.codec ?? h.compress;
  if (!isDumpCompress(id) || (item.mode === 'compressed' && id === DUMP_COMPRESS_NONE)) {
    throw new SpecError(item.line, `a ${item.mode} page needs a codec: set compress rle|gzip or codec=`);
  }
  const codec = makePageCodec(id);
  try {
    const enc = codec.encode(item.data, new Uint8Array(Math.max(1, item.data.length)));
    if (item.mode === 'compressed' && enc.flags !== DUMP_DH_COMPRESSED) {
      throw new SpecError(item.line, 'the page does not compress; use raw or auto');
    }
    return { data: Uint8Array.from(enc.data), flags: enc.flags };
  } finally {
    codec.close();
  }
}

function resolveOffset(at: string, labels: Map<string, bigint>, line: number): number {
  if (/^(0x[0-9a-f]+|\d+)$/i.test(at)) return small(at, line);
  const m = /^([a-z]+\d*)([+-](?:0x[0-9a-f]+|\d+))?$/i.exec(at);
  if (!m) throw new SpecError(line, `offset '${at}' is not N or LABEL[+-N]`);
  const base = labels.get(m[1]);
  if (base === undefined) throw new SpecError(line, `no label '${m[1]}' in this dump`);
  const delta = m[2] ? (m[2][0] === '-' ? -1n : 1n) * num(m[2].slice(1), line) : 0n;
  return Number(base + delta);
}

/** Builds the dump a spec (or spec text) describes. */
export function buildLkcd(specOrText: MklkcdSpec | string): MklkcdResult {
  const spec = typeof specOrText === 'string' ? parseSpec(specOrText) : specOrText;
  const h = spec.header;
  const v8 = (h.version & 0xf) === 8;
  const saneBuffer = h.bufferSize <= 16n << 20n && h.bufferSize >= BigInt(dump_header.size + dump_header_asm.size)
    ? Number(h.bufferSize) : LKCD_OFFSET_TO_FIRST_PAGE;
  const dataOffset = h.dataOffset ?? (v8 ? LKCD_OFFSET_TO_FIRST_PAGE : saneBuffer);

  const chunks: Uint8Array[] = [];
  const records: MklkcdRecordInfo[] = [];
  const pages = new Map<bigint, Uint8Array>();
  const order: bigint[] = [];
  const labels = new Map<string, bigint>();
  let pos = BigInt(dataOffset);
  let endOffset: bigint | null = null;
  let trailerOffset: bigint | null = null;
  let ext: { at: bigint; item: Extract<MklkcdItem, { kind: 'checksums' }>; chunk: number } | null = null;
  let pageIndex = 0;
  const pageShift = BigInt(Math.log2(h.pageSize) | 0);

  for (const item of spec.items) {
    if (item.kind === 'page') {
      const enc = encodePage(item, h);
      const dpSize = item.dpSize ?? enc.data.length;
      const stored = new Uint8Array(dpSize);
      stored.set(enc.data.subarray(0, Math.min(dpSize, enc.data.length)));
      for (const [off, mask] of item.flips) {
        if (off >= stored.length) throw new SpecError(item.line, `flip=${off} is outside the ${stored.length} stored bytes`);
        stored[off] ^= mask;
      }
      const flags = item.dpFlags ?? enc.flags;
      const hdr = dump_page.toBytes({ dp_address: item.address, dp_size: dpSize, dp_flags: flags });
      labels.set(`rec${pageIndex}`, pos);
      labels.set(`data${pageIndex}`, pos + BigInt(hdr.length));
      pageIndex++;
      const pfn = item.address >> pageShift;
      records.push({ kind: 'page', offset: pos, dataOffset: pos + BigInt(hdr.length), pfn, dpSize, dpFlags: flags });
      order.push(pfn);
      const pristine = item.data.length === h.pageSize && item.dpSize === undefined && item.dpFlags === undefined
        && item.flips.length === 0;
      if (pristine && !pages.has(pfn)) pages.set(pfn, item.data);
      chunks.push(hdr, stored);
      pos += BigInt(hdr.length + stored.length);
    } else if (item.kind === 'end') {
      const flags = item.dpFlags ?? (DUMP_DH_END | (item.truncated ? DUMP_DH_TRUNCATED : 0));
      const hdr = dump_page.toBytes({ dp_address: 0n, dp_size: item.dpSize ?? 0, dp_flags: flags });
      labels.set('end', pos);
      endOffset ??= pos;
      records.push({ kind: 'end', offset: pos, dataOffset: pos + BigInt(hdr.length), pfn: null, dpSize: item.dpSize ?? 0, dpFlags: flags });
      chunks.push(hdr);
      pos += BigInt(hdr.length);
    } else if (item.kind === 'checksums') {
      // Filled in once the headers exist; its size depends only on the counts.
      const size = extensionSize(item.ranges.length, pageIndex);
      labels.set('ext', pos);
      labels.set('csum', pos + BigInt(item.ranges.length ? lkcd_ext_header.size + item.ranges.length * lkcd_range.size : 0));
      ext = { at: pos, item, chunk: chunks.length };
      chunks.push(new Uint8Array(size));
      pos += BigInt(size);
    } else if (item.kind === 'trailer') {
      const t = encodeLkcdMissingTrailer(item.ranges);
      labels.set('trailer', pos);
      trailerOffset ??= pos;
      chunks.push(t);
      pos += BigInt(t.length);
    } else {
      chunks.push(item.data);
      pos += BigInt(item.data.length);
    }
  }

  const numPages = h.numPages === 'auto' ? pageIndex : h.numPages;
  let bytes = new Uint8Array(Buffer.concat([encodeHeaders(h, numPages, dataOffset), ...chunks]));
  if (ext) writeExtension(bytes, ext.at, ext.item, records, h, dataOffset, endOffset);
  labels.set('locator', BigInt(LKCD_EXT_LOCATOR_OFFSET));
  labels.set('eof', BigInt(bytes.length));
  for (const c of spec.corruptions) {
    const at = resolveOffset(c.at, labels, c.line);
    if (c.op === 'truncate') {
      if (at > bytes.length) throw new SpecError(c.line, `truncate at ${at} is past the end (${bytes.length})`);
      bytes = bytes.slice(0, at);
      continue;
    }
    const width = { flip: 1, set8: 1, set32: 4, set64: 8 }[c.op];
    if (at < 0 || at + width > bytes.length) throw new SpecError(c.line, `${c.op} at ${at} is outside the file`);
    const view = viewOf(bytes);
    if (c.op === 'flip') bytes[at] ^= Number(c.value & 0xffn);
    else if (c.op === 'set8') bytes[at] = Number(c.value & 0xffn);
    else if (c.op === 'set32') view.setUint32(at, Number(c.value & 0xffffffffn), true);
    else view.setBigUint64(at, c.value, true);
  }
  return { bytes, pages, order, records, endOffset, trailerOffset, extOffset: ext?.at ?? null, dataOffset };
}

/** Bytes of an extension area with `ranges` ranges and `records` page records. */
function extensionSize(ranges: number, records: number): number {
  return (ranges ? lkcd_ext_header.size + ranges * lkcd_range.size : 0)
    + lkcd_ext_header.size + lkcd_csum_head.size + records * lkcd_csum_record.size + lkcd_ext_header.size;
}

/** Writes the extension area for the records as they are in `bytes`, and the locator. */
function writeExtension(bytes: Uint8Array, at: bigint, item: Extract<MklkcdItem, { kind: 'checksums' }>, records: MklkcdRecordInfo[],
  h: MklkcdHeader, dataOffset: number, endOffset: bigint | null): void {
  const csum = new CsumRecords();
  for (const r of records) {
    if (r.kind !== 'page') continue;
    const o = Number(r.offset);
    const hdr = bytes.subarray(o, o + dump_page.size);
    const data = bytes.subarray(o + dump_page.size, o + dump_page.size + r.dpSize);
    csum.add(Number(r.pfn! & 0xffffffffn), r.dpSize & 0xffff, r.dpFlags & 0xffff, recordCrc32(hdr, data));
  }
  const headerLen = (h.headerSize ?? dump_header.size) + dump_header_asm.size;
  const end = endOffset === null ? new Uint8Array(0) : bytes.subarray(Number(endOffset), Number(endOffset) + dump_page.size);
  const area = encodeExtensionArea({
    ranges: item.ranges,
    csum: {
      data_offset: BigInt(dataOffset), header_len: headerLen, header_crc32: zlib.crc32(bytes.subarray(0, headerLen)) >>> 0,
      end_crc32: zlib.crc32(end) >>> 0, flags: item.locator ? LKCD_CSUM_F_LOCATOR : 0, records: csum,
    },
  });
  bytes.set(area, Number(at));
  if (item.locator) bytes.set(encodeLocator(at, area), LKCD_EXT_LOCATOR_OFFSET);
}

/** Builds the dump and writes it to `file`. */
export function writeLkcd(specOrText: MklkcdSpec | string, file: string): MklkcdResult {
  const result = buildLkcd(specOrText);
  fs.writeFileSync(file, result.bytes);
  return result;
}

/** The spec text of fixture `name` (test/fixtures/specs/NAME.spec). */
export function fixtureSpec(name: string): string {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'specs');
  return fs.readFileSync(path.join(dir, `${name}.spec`), 'utf8');
}

// `node mklkcd.js SPEC OUT` when run directly (after compiling the tests).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [specPath, out] = process.argv.slice(2);
  if (!specPath || !out) {
    process.stderr.write('usage: mklkcd SPEC OUT\n');
    process.exit(64);
  }
  try {
    const r = writeLkcd(fs.readFileSync(specPath, 'utf8'), out);
    process.stdout.write(`${out}: ${r.bytes.length} bytes, ${r.order.length} page records\n`);
  } catch (e) {
    process.stderr.write(`mklkcd: ${(e as Error).message}\n`);
    process.exit(65);
  }
}
