/**
 * Deterministic page-content generators for the workload (DESIGN.md §2.1,
 * last bullet): kernel text and rodata from a real x86_64 ELF on this machine,
 * page cache from real files, synthesized anonymous heaps, slab pages and
 * database pages, zero pages, and encrypted-like pages.
 *
 * Speed comes from pools: each class builds one pool of at most `poolBytes`
 * on first use, and a page is a 4 KiB copy of one pool page plus a few
 * per-page stamps derived from the PFN (self pointers, LSNs, block numbers).
 * The stamps are injective in the PFN, so no two pages of a class are equal,
 * while the bytes around them keep the class's compressibility.
 */
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DumpError, InternalError, UsageError, wrapError } from '../../codec/errors.js';
import { viewOf } from '../../codec/struct.js';
import { PAGE_SHIFT, PAGE_SIZE } from '../../machine/constants.js';
import { GarbageBound } from '../../machine/garbage.js';
import { LOAD_PHYSICAL_ADDR, PAGE_OFFSET, __START_KERNEL_map } from '../constants.js';
import { findKernelTextElf } from './elf_text.js';

export type ContentClass =
  | 'kernel_text'      // machine code: the .text section bytes of a real x86_64 ELF on this machine
  | 'kernel_rodata'    // read-only data: the .rodata section of the same ELF
  | 'page_cache'       // bytes of real files read from disk (text files, shared libraries, compressed archives)
  | 'anon_heap'        // user-space heap: malloc chunks, user pointers, small ints, short strings, zero padding
  | 'slab'             // kernel slab objects of one struct shape per page, some free and poisoned
  | 'database'         // database buffer pool page: header, slot array, rows, zeroed free space
  | 'zero'             // all zero bytes
  | 'incompressible';  // encrypted-like bytes (AES-128-CTR keystream keyed by the seed)

/** Every class, in a fixed order (the order is part of the per-class PRNG keys). */
export const CONTENT_CLASSES: readonly ContentClass[] = [
  'kernel_text', 'kernel_rodata', 'page_cache', 'anon_heap', 'slab', 'database', 'zero', 'incompressible',
];

export interface ContentOptions {
  seed: number;
  /** Upper bound of each class's pool, in bytes (rounded down to pages); default DEFAULT_POOL_BYTES. */
  poolBytes?: number;
}

export const DEFAULT_POOL_BYTES = 8 << 20;

/** Directories the page-cache pool reads, in this order; each gets an equal share of the pool. */
export const PAGE_CACHE_DIRS: readonly string[] = [
  '/usr/share/doc', '/usr/share/common-licenses', '/usr/include', '/usr/lib/x86_64-linux-gnu',
  '/usr/share/perl5', '/etc',
];
/** At most this many bytes (from the start) of one file go into the page-cache pool. */
export const PAGE_CACHE_FILE_MAX_BYTES = 1 << 20;

// --- Linux and glibc constants the synthesized classes mirror -------------

const PAGE_OFFSET_HI = Number(PAGE_OFFSET >> 32n) >>> 0;
const PAGE_OFFSET_LO = Number(PAGE_OFFSET & 0xffffffffn) >>> 0;
/** Kernel text starts at __START_KERNEL_map + LOAD_PHYSICAL_ADDR (0xffffffff81000000). */
const KERNEL_TEXT_VADDR = __START_KERNEL_map + LOAD_PHYSICAL_ADDR;
const KERNEL_TEXT_HI = Number(KERNEL_TEXT_VADDR >> 32n) >>> 0;
const KERNEL_TEXT_LO = Number(KERNEL_TEXT_VADDR & 0xffffffffn) >>> 0;
/** include/linux/poison.h: a freed slab object is filled with POISON_FREE and ends in POISON_END. */
const POISON_FREE = 0x6b;
const POISON_END = 0xa5;
/** kmalloc-style object sizes a slab page is cut into. */
const SLAB_OBJECT_SIZES = [64, 64, 96, 128, 128, 192, 256, 256, 512, 1024] as const;
/** Highest objects-per-page count (PAGE_SIZE / smallest size). */
const SLAB_MAX_OBJECTS = PAGE_SIZE / 64;
/** INITIAL_JIFFIES with HZ=1000: jiffies start 300 s before the 32-bit wrap (include/linux/jiffies.h). */
const INITIAL_JIFFIES = 0x100000000 - 300 * 1000;

/** glibc malloc/malloc.c: chunk header is prev_size + size, user data is 16-byte aligned. */
const SIZE_SZ = 8;
const MALLOC_ALIGNMENT = 16;
const MALLOC_CHUNK_HEADER = 2 * SIZE_SZ;
const PREV_INUSE = 0x1;
/** Upper 32 bits of a PIE heap address (brk heap right after a 0x5555_5555_4000 executable). */
const USER_HEAP_HI = 0x00005555;
const USER_HEAP_LO_BASE = 0x55559000;
/** Upper bits of mmap-area addresses (shared libraries, thread stacks): 0x00007fxx. */
const USER_MMAP_HI_BASE = 0x00007f00;

/** PostgreSQL bufpage.h / itemid.h / htup_details.h (page layout version 4). */
const SizeOfPageHeaderData = 24;
const sizeof_ItemIdData = 4;
const PG_PAGE_LAYOUT_VERSION = 4;
const LP_NORMAL = 1;
/** ItemIdData bit fields: lp_off:15, lp_flags:2, lp_len:15. */
const LP_OFF_MASK = 0x7fff;
const LP_FLAGS_SHIFT = 15;
const LP_FLAGS_MASK = 0x3;
const LP_LEN_SHIFT = 17;
const LP_DEAD = 3;
const SizeofHeapTupleHeader = 23;
const MAXIMUM_ALIGNOF = 8;
/** t_hoff without a null bitmap or oid: MAXALIGN(SizeofHeapTupleHeader). */
const TUPLE_HOFF = Math.ceil(SizeofHeapTupleHeader / MAXIMUM_ALIGNOF) * MAXIMUM_ALIGNOF;
const HEAP_HASVARWIDTH = 0x0002;
const HEAP_XMIN_COMMITTED = 0x0100;
const HEAP_XMAX_INVALID = 0x0800;
const HEAP_XMAX_COMMITTED = 0x0400;
/** Offsets inside PageHeaderData and HeapTupleHeaderData. */
const pd_lsn = 0;
const pd_checksum = 8;
const pd_lower = 12;
const pd_upper = 14;
const pd_special = 16;
const pd_pagesize_version = 18;
const t_xmin = 0;
const t_xmax = 4;
const t_ctid_bi_hi = 12;
const t_ctid_bi_lo = 14;
const t_ctid_ip_posid = 16;
const t_infomask2 = 18;
const t_infomask = 20;
const t_hoff = 22;
/** Microseconds from 2000-01-01 (the PostgreSQL epoch) to 2024-01-01. */
const PG_TIMESTAMP_2024 = 757_382_400 * 1_000_000;

/** Where the real-byte classes (text, rodata, page cache) carry their per-page stamp. */
const FILE_STAMP_OFFSET = PAGE_SIZE - 8;
/** Where an anon_heap page carries its heap-pointer stamp and its small-int stamp. */
const ANON_STAMP_PTR_OFFSET = 0x18;
const ANON_STAMP_INT_OFFSET = 0x20;
const ANON_COUNTER_STAMPS = 3;

/** The AES-128-CTR counter advances one 16-byte block at a time: 256 blocks per page. */
const AES_BLOCK_BYTES = 16;
const AES_BLOCKS_PER_PAGE_SHIFT = 8n; // log2(PAGE_SIZE / AES_BLOCK_BYTES)
/** The keystream is made this much at a time (a CTR stream: the chunk size does not change its bytes). */
const KEYSTREAM_CHUNK_BYTES = 64 << 10;
/** A young-generation collection after each this much keystream (each chunk is a new Buffer). */
const KEYSTREAM_GARBAGE_BYTES = 8 << 20;

const TWO_POW_32 = 0x100000000;

// --- PRNG ------------------------------------------------------------------

/** lowbias32 integer hash (Chris Wellons, "Prospecting for Hash Functions", 2018). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function rotl32(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** xoshiro128** 1.1 (Blackman and Vigna, 2018); state seeded from a Weyl sequence through mix32. */
class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let w = seed >>> 0;
    const step = () => { w = (w + 0x9e3779b9) >>> 0; return mix32(w); };
    this.s0 = step();
    this.s1 = step();
    this.s2 = step();
    this.s3 = step();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl32(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl32(this.s3, 11);
    return result;
  }

  /** An integer in [0, n), n ≤ 2^32. */
  below(n: number): number {
    return Math.floor((this.next() * n) / TWO_POW_32);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p * TWO_POW_32;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

// --- byte helpers ------------------------------------------------------------

function setU64(v: DataView, at: number, lo: number, hi: number): void {
  v.setUint32(at, lo >>> 0, true);
  v.setUint32(at + 4, hi >>> 0, true);
}

/** Writes a non-negative integer below 2^53 as a little-endian u64. */
function setU64n(v: DataView, at: number, value: number): void {
  v.setUint32(at, value % TWO_POW_32, true);
  v.setUint32(at + 4, Math.floor(value / TWO_POW_32), true);
}

const WORDS = [
  'user', 'session', 'config', 'default', 'error', 'value', 'name', 'id', 'count', 'status', 'ok', 'true',
  'false', 'null', 'http', 'https', 'localhost', 'admin', 'service', 'worker', 'thread', 'queue', 'cache',
  'request', 'response', 'GET', 'POST', 'application/json', 'text/html', 'utf-8', 'en_US.UTF-8', 'LANG',
  'HOME', 'PATH', '/usr/bin', '/usr/lib/x86_64-linux-gnu', '/var/log', '/tmp', 'index', 'key', 'token',
  'timeout', 'retry', 'connect', 'closed', 'open', 'read', 'write', 'alice', 'bob', 'carol', 'dave',
  'order', 'item', 'price', 'total', 'amount', 'customer', 'email', 'example.com', 'version', '1.2.3',
  'main', 'init', 'handler', 'callback', 'buffer', 'length', 'offset', 'debug', 'info', 'warning',
];
const STATUS_WORDS = ['new', 'paid', 'shipped', 'delivered', 'cancelled', 'pending', 'refunded'];
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.net'];

/** Writes ASCII `text` at `at`, stopping before `end`; returns the end offset. */
function putAscii(u8: Uint8Array, at: number, end: number, text: string): number {
  const n = Math.min(text.length, end - at);
  for (let i = 0; i < n; i++) u8[at + i] = text.charCodeAt(i) & 0x7f;
  return at + n;
}

function phrase(rng: Xoshiro128, words: number): string {
  const parts: string[] = [];
  for (let i = 0; i < words; i++) parts.push(rng.pick(WORDS));
  switch (rng.below(4)) {
    case 0: return parts.join(' ');
    case 1: return parts.join('/');
    case 2: return `${parts[0]}=${parts.slice(1).join(',')}`;
    default: return `{"${parts[0]}":${rng.below(10000)},"${parts[1] ?? 'v'}":"${parts.slice(2).join(' ')}"}`;
  }
}

// --- the generator ---------------------------------------------------------------

interface Pool {
  /** A whole number of pages. */
  readonly bytes: Uint8Array;
  readonly pages: number;
  /** Per-pool-page facts the per-page stamps need (slab: size, list offset, free mask). */
  readonly meta?: Uint32Array;
}

const SLAB_META_WORDS = 4; // objSize, listOff, freeMaskLo, freeMaskHi

/**
 * Fills pages with realistic content. Content is a pure function of
 * (seed, class, pfn, poolBytes) on a given machine (the real-byte pools
 * depend on the files present).
 */
export class ContentGenerator {
  private readonly poolBytes: number;
  private readonly seedKey: number;
  private readonly classKeys: Map<ContentClass, number>;
  private readonly pools = new Map<ContentClass, Pool>();
  private elfPath: string | null = null;
  private pageCacheFiles: string[] | null = null;
  private aesKey: Buffer | null = null;
  /** The last keystream cipher and the PFN it continues at, so sequential fills don't re-key. */
  private keystream: { cipher: ReturnType<typeof createCipheriv>; nextPfn: bigint } | null = null;
  private zeroChunk: Uint8Array | null = null;
  private keystreamGarbage: GarbageBound | null = null;
  private readonly slabScratch = new Int32Array(SLAB_MAX_OBJECTS);

  constructor(opts: ContentOptions) {
    if (!Number.isSafeInteger(opts.seed)) {
      throw new UsageError(`content seed ${opts.seed} is not an integer`);
    }
    const poolBytes = opts.poolBytes ?? DEFAULT_POOL_BYTES;
    if (!Number.isSafeInteger(poolBytes) || poolBytes < PAGE_SIZE) {
      throw new UsageError(`content pool size ${poolBytes} must be an integer of at least ${PAGE_SIZE} bytes`);
    }
    this.poolBytes = poolBytes - (poolBytes % PAGE_SIZE);
    const seedLo = opts.seed >>> 0;
    const seedHi = Math.floor(opts.seed / TWO_POW_32) >>> 0;
    this.seedKey = mix32(seedLo ^ mix32((seedHi + 0x632be5ab) >>> 0));
    this.classKeys = new Map(CONTENT_CLASSES.map((cls, i) =>
      [cls, mix32((this.seedKey ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0)]));
  }

  /** Where the real bytes came from (loads the ELF and page-cache pools if not yet loaded). */
  get sources(): { elf: string; files: string[] } {
    this.pool('kernel_text');
    this.pool('page_cache');
    return { elf: this.elfPath ?? '', files: [...(this.pageCacheFiles ?? [])] };
  }

  /**
   * Fills `out` (length a multiple of 4096) with pages of the class; `pfn` is
   * the first page frame number. Page i of `out` depends only on (seed, cls,
   * pfn + i), so filling a range at once or page by page gives the same bytes.
   */
  fill(cls: ContentClass, pfn: bigint, out: Uint8Array): void {
    if (out.length % PAGE_SIZE !== 0) {
      throw new InternalError(`content fill of ${out.length} bytes is not a whole number of pages`);
    }
    if (pfn < 0n || pfn + BigInt(out.length / PAGE_SIZE) > 1n << 64n) {
      throw new InternalError(`content fill at pfn ${pfn} is out of range`);
    }
    if (out.length === 0) return;
    switch (cls) {
      case 'zero':
        out.fill(0);
        return;
      case 'incompressible':
        this.fillKeystream(pfn, out);
        return;
      case 'kernel_text':
      case 'kernel_rodata':
      case 'page_cache':
      case 'anon_heap':
      case 'slab':
      case 'database':
        this.fillFromPool(cls, pfn, out);
        return;
      default:
        throw new InternalError(`unknown content class '${String(cls)}'`);
    }
  }

  /**
   * Lets go of the class's pool (and the keystream's buffers): a later fill
   * of the class builds it again, the same bytes. Callers that fill one
   * class at a time keep one pool in memory instead of all of them.
   */
  releasePool(cls: ContentClass): void {
    this.pools.delete(cls);
    if (cls === 'incompressible') {
      this.keystream = null;
      this.zeroChunk = null;
      this.keystreamGarbage = null;
    }
  }

  private key(cls: ContentClass): number {
    return this.classKeys.get(cls) ?? 0;
  }

  private fillFromPool(cls: ContentClass, pfn: bigint, out: Uint8Array): void {
    const pool = this.pool(cls);
    const src = pool.bytes;
    const view = viewOf(out);
    const k = this.key(cls);
    const k2 = mix32(k ^ 0x68e31da4);
    // Text and rodata are laid out contiguously, like a kernel image:
    // consecutive PFNs get consecutive pool pages from a seed-chosen start.
    const contiguous = cls === 'kernel_text' || cls === 'kernel_rodata';
    const shift = k % pool.pages;
    let lo = Number(pfn & 0xffffffffn) >>> 0;
    let hi = Number((pfn >> 32n) & 0xffffffffn) >>> 0;
    for (let at = 0; at < out.length; at += PAGE_SIZE) {
      const h = mix32((mix32((k ^ lo) >>> 0) + hi) >>> 0);
      const index = contiguous ? ((lo % pool.pages) + shift) % pool.pages : h % pool.pages;
      out.set(src.subarray(index * PAGE_SIZE, (index + 1) * PAGE_SIZE), at);
      switch (cls) {
        case 'anon_heap':
          this.stampAnonHeap(view, at, lo, hi, k, h);
          break;
        case 'slab':
          this.stampSlab(view, at, lo, hi, pool.meta!, index);
          break;
        case 'database':
          this.stampDatabase(view, at, lo, hi, k, k2);
          break;
        default:
          // Real bytes stay real except for one word, the PFN xor a class key.
          setU64(view, at + FILE_STAMP_OFFSET, lo ^ k, hi ^ k2);
      }
      lo = (lo + 1) >>> 0;
      if (lo === 0) hi = (hi + 1) >>> 0;
    }
  }

  /** A heap pointer 0x00005555_xxxxxxx0 (rotl keeps it injective in the PFN) and the PFN's high half. */
  private stampAnonHeap(v: DataView, at: number, lo: number, hi: number, k: number, h: number): void {
    setU64(v, at + ANON_STAMP_PTR_OFFSET, (rotl32(lo, 4) ^ (k & ~0xf)) >>> 0, USER_HEAP_HI);
    setU64(v, at + ANON_STAMP_INT_OFFSET, hi, 0);
    // A few counters that a running program would have bumped.
    for (let i = 0; i < ANON_COUNTER_STAMPS; i++) {
      const r = mix32((h + i) >>> 0);
      const word = 8 + (r % (PAGE_SIZE / 8 - 8));
      v.setUint32(at + word * 8, (r >>> 20) & 0xfff, true);
    }
  }

  /** Links every allocated object's list_head to its neighbours in this page, and the free objects' freelist. */
  private stampSlab(v: DataView, at: number, lo: number, hi: number, meta: Uint32Array, index: number): void {
    const m = index * SLAB_META_WORDS;
    const objSize = meta[m];
    const listOff = meta[m + 1];
    const freeLo = meta[m + 2];
    const freeHi = meta[m + 3];
    const n = Math.floor(PAGE_SIZE / objSize);
    // Direct-map address of this page: PAGE_OFFSET + (pfn << PAGE_SHIFT).
    const baseLo = (PAGE_OFFSET_LO + (lo << PAGE_SHIFT)) >>> 0;
    const baseHi = (PAGE_OFFSET_HI + (lo >>> (32 - PAGE_SHIFT)) + (hi << PAGE_SHIFT)) >>> 0;
    const isFree = (i: number) => (i < 32 ? (freeLo >>> i) & 1 : (freeHi >>> (i - 32)) & 1) === 1;
    const order = this.slabScratch;
    let used = 0;
    for (let i = 0; i < n; i++) if (!isFree(i)) order[used++] = i;
    for (let j = 0; j < used; j++) {
      const obj = order[j] * objSize;
      const next = order[(j + 1) % used] * objSize;
      const prev = order[(j + used - 1) % used] * objSize;
      setU64(v, at + obj + listOff, baseLo + next, baseHi);
      setU64(v, at + obj + listOff + 8, baseLo + prev, baseHi);
    }
    let nextFree = -1;
    for (let i = n - 1; i >= 0; i--) {
      if (!isFree(i)) continue;
      if (nextFree < 0) setU64(v, at + i * objSize, 0, 0);
      else setU64(v, at + i * objSize, baseLo + nextFree * objSize, baseHi);
      nextFree = i;
    }
  }

  /** pd_lsn, pd_checksum, and every live tuple's t_ctid block number. */
  private stampDatabase(v: DataView, at: number, lo: number, hi: number, k: number, k2: number): void {
    // PageXLogRecPtr {xlogid, xrecoff}: injective in the PFN.
    setU64(v, at + pd_lsn, (k2 + hi) >>> 0, (lo ^ k) >>> 0);
    v.setUint16(at + pd_checksum, mix32(lo ^ k2) & 0xffff, true);
    const block = (lo ^ (k >>> 7)) >>> 0;
    const lower = v.getUint16(at + pd_lower, true);
    const items = Math.min(Math.max(0, lower - SizeOfPageHeaderData), PAGE_SIZE) / sizeof_ItemIdData;
    for (let i = 0; i < items; i++) {
      const itemId = v.getUint32(at + SizeOfPageHeaderData + i * sizeof_ItemIdData, true);
      const lpOff = itemId & LP_OFF_MASK;
      const lpFlags = (itemId >>> LP_FLAGS_SHIFT) & LP_FLAGS_MASK;
      if (lpFlags !== LP_NORMAL || lpOff + SizeofHeapTupleHeader > PAGE_SIZE) continue;
      v.setUint16(at + lpOff + t_ctid_bi_hi, block >>> 16, true);
      v.setUint16(at + lpOff + t_ctid_bi_lo, block & 0xffff, true);
    }
  }

  /** AES-128-CTR keystream with the counter at pfn * 256 blocks: page pfn is blocks [pfn*256, pfn*256+256). */
  private fillKeystream(pfn: bigint, out: Uint8Array): void {
    if (!this.aesKey) {
      this.aesKey = createHash('sha256').update(`lkcd-softboot/incompressible/${this.seedKey}`).digest()
        .subarray(0, AES_BLOCK_BYTES);
    }
    let cipher = this.keystream?.nextPfn === pfn ? this.keystream.cipher : null;
    if (!cipher) {
      const counter = pfn << AES_BLOCKS_PER_PAGE_SHIFT;
      const iv = Buffer.alloc(AES_BLOCK_BYTES);
      iv.writeBigUInt64BE((counter >> 64n) & 0xffffffffffffffffn, 0);
      iv.writeBigUInt64BE(counter & 0xffffffffffffffffn, 8);
      cipher = createCipheriv('aes-128-ctr', this.aesKey, iv);
    }
    this.zeroChunk ??= new Uint8Array(KEYSTREAM_CHUNK_BYTES);
    this.keystreamGarbage ??= new GarbageBound(KEYSTREAM_GARBAGE_BYTES, 'young');
    for (let at = 0; at < out.length; at += KEYSTREAM_CHUNK_BYTES) {
      const n = Math.min(KEYSTREAM_CHUNK_BYTES, out.length - at);
      out.set(cipher.update(this.zeroChunk.subarray(0, n)), at);
      this.keystreamGarbage.note(n);
    }
    // A whole number of pages is a whole number of AES blocks, so the
    // cipher now stands exactly at the next page's counter.
    this.keystream = { cipher, nextPfn: pfn + BigInt(out.length / PAGE_SIZE) };
  }

  private pool(cls: ContentClass): Pool {
    const have = this.pools.get(cls);
    if (have) return have;
    switch (cls) {
      case 'kernel_text':
      case 'kernel_rodata': {
        // One read of the ELF builds both pools.
        const elf = findKernelTextElf(this.poolBytes);
        this.elfPath = elf.path;
        this.pools.set('kernel_text', wholePages(elf.text));
        this.pools.set('kernel_rodata', wholePages(elf.rodata));
        break;
      }
      case 'page_cache': {
        const { bytes, files } = buildPageCachePool(this.poolBytes);
        this.pageCacheFiles = files;
        this.pools.set(cls, { bytes, pages: bytes.length / PAGE_SIZE });
        break;
      }
      case 'anon_heap': {
        const bytes = new Uint8Array(this.poolBytes);
        buildAnonHeapPool(bytes, new Xoshiro128(this.key(cls)));
        this.pools.set(cls, { bytes, pages: bytes.length / PAGE_SIZE });
        break;
      }
      case 'slab': {
        const bytes = new Uint8Array(this.poolBytes);
        const meta = buildSlabPool(bytes, new Xoshiro128(this.key(cls)));
        this.pools.set(cls, { bytes, pages: bytes.length / PAGE_SIZE, meta });
        break;
      }
      case 'database': {
        const bytes = new Uint8Array(this.poolBytes);
        buildDatabasePool(bytes, new Xoshiro128(this.key(cls)));
        this.pools.set(cls, { bytes, pages: bytes.length / PAGE_SIZE });
        break;
      }
      default:
        throw new InternalError(`content class '${cls}' has no pool`);
    }
    return this.pools.get(cls)!;
  }
}

/** A pool over whole pages of `bytes` (a section shorter than a page is zero-padded to one). */
function wholePages(bytes: Uint8Array): Pool {
  const pages = Math.max(1, Math.floor(bytes.length / PAGE_SIZE));
  if (bytes.length === pages * PAGE_SIZE) return { bytes, pages };
  const out = new Uint8Array(pages * PAGE_SIZE);
  out.set(bytes.subarray(0, Math.min(bytes.length, out.length)));
  return { bytes: out, pages };
}

// --- page cache: real files --------------------------------------------------------

/** Errors that mean "this file or directory cannot be read": skipped, as `find -readable` would. */
const SKIPPABLE_ERRNO = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENXIO', 'EIO', 'ENODEV']);

function isSkippable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && SKIPPABLE_ERRNO.has(code);
}

function byName(a: fs.Dirent, b: fs.Dirent): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Regular files under `dir`, depth first in sorted order; symlinks and special files are skipped. */
function* regularFiles(dir: string): Generator<string> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (isSkippable(err)) return;
    throw wrapError(`listing ${dir} for page-cache content`, err);
  }
  entries.sort(byName);
  for (const e of entries) {
    const path = nodePath.join(dir, e.name);
    if (e.isDirectory()) yield* regularFiles(path);
    else if (e.isFile()) yield path;
  }
}

/** Reads up to `limit` bytes from the start of a world-readable regular file into `buf` at `at`; 0 if skipped. */
function readFileInto(path: string, buf: Uint8Array, at: number, limit: number): number {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    if (isSkippable(err)) return 0;
    throw wrapError(`opening ${path} for page-cache content`, err);
  }
  try {
    // Only world-readable regular files: what any user could read, so
    // secrets such as /etc/shadow or 0600 keys never land in simulated RAM.
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (st.mode & fs.constants.S_IROTH) === 0) return 0;
    let done = 0;
    while (done < limit) {
      const n = fs.readSync(fd, buf, at + done, limit - done, done);
      if (n === 0) break;
      done += n;
    }
    return done;
  } catch (err) {
    if (isSkippable(err)) return 0;
    throw wrapError(`reading ${path} for page-cache content`, err);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads real, world-readable files into a pool. Each directory of PAGE_CACHE_DIRS gets an
 * equal share of what is left, so the pool mixes text, libraries and
 * compressed files. A file occupies whole pages, its tail zero-filled as
 * the kernel leaves a page-cache page past EOF; a file is read from its
 * start, at most PAGE_CACHE_FILE_MAX_BYTES, and the last one may be cut
 * where the pool ends.
 */
function buildPageCachePool(poolBytes: number): { bytes: Uint8Array; files: string[] } {
  const buf = new Uint8Array(poolBytes);
  const files: string[] = [];
  let used = 0;
  for (let d = 0; d < PAGE_CACHE_DIRS.length && used < poolBytes; d++) {
    const share = Math.floor((poolBytes - used) / (PAGE_CACHE_DIRS.length - d));
    const budgetEnd = used + share;
    for (const path of regularFiles(PAGE_CACHE_DIRS[d])) {
      if (used >= budgetEnd) break;
      const n = readFileInto(path, buf, used, Math.min(PAGE_CACHE_FILE_MAX_BYTES, poolBytes - used));
      if (n === 0) continue;
      files.push(path);
      used += Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
    }
  }
  if (used === 0) {
    throw new DumpError('NOINPUT', `no readable files for page-cache content under ${PAGE_CACHE_DIRS.join(', ')}`);
  }
  return { bytes: buf.subarray(0, used), files };
}

// --- anon_heap: a glibc-style brk heap ----------------------------------------------

const enum HeapWord { Zero, HeapPtr, LibPtr, SmallInt, IntPair, Flags, Random }

interface HeapShape {
  readonly chunkSize: number;
  readonly words: HeapWord[];
}

function heapShapes(rng: Xoshiro128): HeapShape[] {
  const shapes: HeapShape[] = [];
  const sizes = [32, 32, 48, 48, 64, 64, 80, 96, 112, 128, 160, 192, 256, 320, 512, 1040];
  for (const chunkSize of sizes) {
    const words: HeapWord[] = [];
    for (let w = 0; w < (chunkSize - MALLOC_CHUNK_HEADER) / 8; w++) {
      const r = rng.below(100);
      words.push(r < 26 ? HeapWord.Zero : r < 52 ? HeapWord.HeapPtr : r < 58 ? HeapWord.LibPtr
        : r < 76 ? HeapWord.SmallInt : r < 86 ? HeapWord.IntPair : r < 93 ? HeapWord.Flags : HeapWord.Random);
    }
    shapes.push({ chunkSize, words });
  }
  return shapes;
}

/**
 * A contiguous brk heap: chunks with prev_size/size headers (PREV_INUSE set),
 * holding structs of a few recurring shapes (heap and library pointers,
 * small ints, flags, zero fields), short strings, int arrays, calloc'ed
 * zeros, and free chunks with fd/bk pointers.
 */
function buildAnonHeapPool(pool: Uint8Array, rng: Xoshiro128): void {
  const v = viewOf(pool);
  const heapLo = (USER_HEAP_LO_BASE + rng.below(0x4000) * PAGE_SIZE) >>> 0;
  const mmapHi = USER_MMAP_HI_BASE + rng.below(0x100);
  const libLo = [0, 1, 2, 3].map(() => rng.next() & ~0xfff);
  const shapes = heapShapes(rng);
  const heapPtr = (near: number): number =>
    (heapLo + ((Math.max(0, Math.min(pool.length - 16, near + rng.below(0x10000) - 0x8000))) & ~(MALLOC_ALIGNMENT - 1))) >>> 0;

  let p = 0;
  while (p + MALLOC_CHUNK_HEADER <= pool.length) {
    const kind = rng.below(100);
    let shape: HeapShape | null = null;
    let size: number;
    if (kind < 55) {
      shape = rng.pick(shapes);
      size = shape.chunkSize;
    } else if (kind < 97) {
      size = MALLOC_CHUNK_HEADER + MALLOC_ALIGNMENT * (1 + rng.below(kind < 90 ? 12 : 64));
    } else {
      size = MALLOC_CHUNK_HEADER + MALLOC_ALIGNMENT * (64 + rng.below(448));
    }
    // The top chunk takes whatever is left.
    if (pool.length - p < size + MALLOC_CHUNK_HEADER) size = pool.length - p;
    setU64(v, p, 0, 0);
    setU64(v, p + SIZE_SZ, size | PREV_INUSE, 0);
    const user = p + MALLOC_CHUNK_HEADER;
    const end = p + size;
    if (shape) {
      for (let w = 0, at = user; at + 8 <= end; w++, at += 8) {
        switch (shape.words[w % shape.words.length]) {
          case HeapWord.Zero: break;
          case HeapWord.HeapPtr:
            if (rng.chance(0.85)) setU64(v, at, heapPtr(p), USER_HEAP_HI);
            break;
          case HeapWord.LibPtr: setU64(v, at, (libLo[w & 3] + rng.below(0x200000)) & ~7, mmapHi); break;
          case HeapWord.SmallInt: setU64(v, at, rng.below(rng.chance(0.7) ? 64 : 100000), 0); break;
          case HeapWord.IntPair: setU64(v, at, rng.below(256), rng.below(16)); break;
          case HeapWord.Flags: setU64(v, at, 1 << rng.below(8), 0); break;
          case HeapWord.Random: setU64(v, at, rng.next(), rng.next()); break;
        }
      }
    } else if (kind < 80) {
      // A NUL-terminated string, zero padded to the chunk end.
      let at = user;
      const stop = Math.min(end - 1, user + 16 + rng.below(200));
      while (at < stop) at = putAscii(pool, at, stop, phrase(rng, 1 + rng.below(5)) + ' ');
    } else if (kind < 90) {
      // An int array: ids or counters growing in small steps.
      let x = rng.below(1000);
      for (let at = user; at + 4 <= end; at += 4) { v.setUint32(at, x, true); x += rng.below(4); }
    } else if (kind >= 97) {
      // A large I/O buffer, partly filled with text lines.
      let at = user;
      const stop = user + Math.floor((end - user) * rng.below(100) / 100);
      while (at < stop) at = putAscii(pool, at, stop, `${phrase(rng, 2 + rng.below(6))}\n`);
    }
    // else: calloc'ed zeros.
    if (end - user >= 16 && rng.chance(0.12)) {
      // A free chunk: fd/bk on a bin list, the rest stale.
      setU64(v, user, heapPtr(p), USER_HEAP_HI);
      setU64(v, user + 8, heapPtr(p), USER_HEAP_HI);
    }
    p = end;
  }
}

// --- slab: kmem_cache pages -------------------------------------------------------

const enum SlabWord { Zero, Pointer, OpsPointer, RefCount, Id, Flags, Jiffies, Name, Mode }

interface SlabShape {
  readonly objSize: number;
  readonly listOff: number;
  readonly words: SlabWord[];
  readonly ops: number;       // low half of this struct type's ops-table pointer
  readonly flags: number[];   // the few flag values the type uses
  readonly ptrBase: number;   // low half of where this type's pointers usually point
  readonly freeRate: number;
  nextId: number;
}

const SLAB_NAMES = ['kworker/0:1', 'kworker/1:2', 'ksoftirqd/0', 'rcu_sched', 'systemd', 'sshd', 'postgres',
  'bash', 'nginx', 'jbd2/sda1-8', 'kthreadd', 'migration/0', 'dentry', 'inode_cache', 'eth0', 'lo'];

function slabShapes(rng: Xoshiro128): SlabShape[] {
  const shapes: SlabShape[] = [];
  for (let s = 0; s < 16; s++) {
    const objSize = rng.pick(SLAB_OBJECT_SIZES);
    const nWords = objSize / 8;
    const listOff = 8 * rng.below(Math.min(4, nWords - 2));
    const words: SlabWord[] = [];
    for (let w = 0; w < nWords; w++) {
      const r = rng.below(100);
      words.push(r < 38 ? SlabWord.Zero : r < 56 ? SlabWord.Pointer : r < 64 ? SlabWord.OpsPointer
        : r < 74 ? SlabWord.RefCount : r < 79 ? SlabWord.Id : r < 88 ? SlabWord.Flags
          : r < 92 ? SlabWord.Jiffies : r < 96 ? SlabWord.Name : SlabWord.Mode);
    }
    shapes.push({
      objSize, listOff, words,
      ops: (KERNEL_TEXT_LO + 0x1000000 + rng.below(0x800000) * 8) >>> 0,
      flags: [rng.next() & 0xffff, rng.next() & 0xff, 0],
      ptrBase: rng.next() & 0xf0000000,
      freeRate: rng.below(40) / 100,
      nextId: rng.below(100000),
    });
  }
  return shapes;
}

/**
 * Slab pages: each pool page is cut into objects of one shape; allocated
 * objects carry a list_head (linked at fill time to this page's own
 * addresses), pointers into the direct map, an ops-table pointer into
 * kernel text, refcounts, ids, flags, jiffies and names; free objects are
 * poisoned (POISON_FREE ... POISON_END) behind a freelist pointer.
 * Returns the per-page facts stampSlab needs.
 */
function buildSlabPool(pool: Uint8Array, rng: Xoshiro128): Uint32Array {
  const v = viewOf(pool);
  const shapes = slabShapes(rng);
  const pages = pool.length / PAGE_SIZE;
  const meta = new Uint32Array(pages * SLAB_META_WORDS);
  let jiffies = INITIAL_JIFFIES + rng.below(3600 * 1000);
  for (let pg = 0; pg < pages; pg++) {
    const shape = rng.pick(shapes);
    const n = Math.floor(PAGE_SIZE / shape.objSize);
    let freeLo = 0;
    let freeHi = 0;
    for (let i = 0; i < n; i++) {
      const obj = pg * PAGE_SIZE + i * shape.objSize;
      // The first object stays allocated, so every page has a list_head to stamp.
      if (i > 0 && rng.chance(shape.freeRate)) {
        if (i < 32) freeLo |= 1 << i; else freeHi |= 1 << (i - 32);
        pool.fill(POISON_FREE, obj + 8, obj + shape.objSize - 1);
        pool[obj + shape.objSize - 1] = POISON_END;
        continue;
      }
      jiffies += rng.below(50);
      for (let w = 0; w < shape.words.length; w++) {
        const at = obj + w * 8;
        if (w * 8 >= shape.listOff && w * 8 < shape.listOff + 16) continue;
        switch (shape.words[w]) {
          case SlabWord.Zero: break;
          case SlabWord.Pointer:
            if (rng.chance(0.8)) {
              setU64(v, at, (shape.ptrBase + rng.below(0x10000) * 64) >>> 0, PAGE_OFFSET_HI);
            }
            break;
          case SlabWord.OpsPointer: setU64(v, at, shape.ops, KERNEL_TEXT_HI); break;
          case SlabWord.RefCount: setU64(v, at, 1 + rng.below(3), 0); break;
          case SlabWord.Id: v.setUint32(at, shape.nextId++, true); break;
          case SlabWord.Flags: v.setUint32(at, shape.flags[rng.below(shape.flags.length)], true); break;
          case SlabWord.Jiffies: setU64n(v, at, jiffies); break;
          case SlabWord.Name: putAscii(pool, at, at + 8, rng.pick(SLAB_NAMES)); break;
          case SlabWord.Mode: v.setUint32(at, 0o100644, true); v.setUint32(at + 4, 1000, true); break;
        }
      }
    }
    meta[pg * SLAB_META_WORDS] = shape.objSize;
    meta[pg * SLAB_META_WORDS + 1] = shape.listOff;
    meta[pg * SLAB_META_WORDS + 2] = freeLo >>> 0;
    meta[pg * SLAB_META_WORDS + 3] = freeHi >>> 0;
  }
  return meta;
}

// --- database: PostgreSQL-style heap pages -------------------------------------------

const enum Column { Int4Seq, Int4Ref, Int8Amount, Timestamp, TextName, TextEmail, TextStatus, Bool, Float8 }

interface Table {
  readonly columns: Column[];
  readonly varwidth: boolean;
  nextId: number;
}

function tables(rng: Xoshiro128): Table[] {
  const out: Table[] = [];
  const extra = [Column.Int4Ref, Column.Int8Amount, Column.Timestamp, Column.TextName, Column.TextEmail,
    Column.TextStatus, Column.Bool, Column.Float8];
  for (let t = 0; t < 6; t++) {
    const columns = [Column.Int4Seq];
    const n = 3 + rng.below(6);
    for (let c = 0; c < n; c++) columns.push(rng.pick(extra));
    const varwidth = columns.some((c) => c === Column.TextName || c === Column.TextEmail || c === Column.TextStatus);
    out.push({ columns, varwidth, nextId: 1 + rng.below(1000000) });
  }
  return out;
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** Encodes one row's columns into `row` (attribute alignment as pg_type's typalign); returns its length. */
function encodeRow(row: Uint8Array, rv: DataView, table: Table, rng: Xoshiro128, now: number): number {
  let at = 0;
  for (const col of table.columns) {
    switch (col) {
      case Column.Int4Seq: at = alignUp(at, 4); rv.setInt32(at, table.nextId++, true); at += 4; break;
      case Column.Int4Ref: at = alignUp(at, 4); rv.setInt32(at, 1 + rng.below(5000), true); at += 4; break;
      case Column.Int8Amount: at = alignUp(at, 8); setU64n(rv, at, rng.below(1000000)); at += 8; break;
      case Column.Timestamp: at = alignUp(at, 8); setU64n(rv, at, now + rng.below(60_000_000)); at += 8; break;
      case Column.Bool: row[at++] = rng.below(2); break;
      case Column.Float8: at = alignUp(at, 8); rv.setFloat64(at, rng.below(1000000) / 100, true); at += 8; break;
      default: {
        const text = col === Column.TextName ? `${rng.pick(WORDS)} ${rng.pick(WORDS)}`
          : col === Column.TextEmail ? `${rng.pick(WORDS)}.${rng.below(1000)}@${rng.pick(DOMAINS)}`
            : rng.pick(STATUS_WORDS);
        // A short varlena: 1-byte header ((len + 1) << 1) | 1 (postgres.h, little-endian).
        row[at++] = ((text.length + 1) << 1) | 1;
        at = putAscii(row, at, row.length, text);
      }
    }
  }
  return at;
}

/**
 * Heap pages as PostgreSQL lays them out: PageHeaderData, the ItemIdData
 * array growing up, tuples (HeapTupleHeaderData + row) growing down from
 * pd_special, zeroed free space in between.
 */
function buildDatabasePool(pool: Uint8Array, rng: Xoshiro128): void {
  const v = viewOf(pool);
  const schema = tables(rng);
  const row = new Uint8Array(512);
  const rv = viewOf(row);
  let xid = 1000 + rng.below(1_000_000);
  let now = PG_TIMESTAMP_2024 + rng.below(365 * 86400) * 1_000_000;
  for (let page = 0; page < pool.length; page += PAGE_SIZE) {
    const table = rng.pick(schema);
    const keepFree = rng.chance(0.6) ? rng.below(64) : rng.below(1800);
    let lower = SizeOfPageHeaderData;
    let upper = PAGE_SIZE;
    for (let item = 1; ; item++) {
      row.fill(0);
      const len = TUPLE_HOFF + encodeRow(row, rv, table, rng, now);
      const start = (upper - len) & ~(MAXIMUM_ALIGNOF - 1);
      if (start - (lower + sizeof_ItemIdData) < keepFree) break;
      const tuple = page + start;
      xid += rng.below(3);
      now += rng.below(2_000_000);
      const dead = rng.chance(0.05);
      v.setUint32(tuple + t_xmin, xid, true);
      v.setUint32(tuple + t_xmax, dead ? xid + 1 + rng.below(100) : 0, true);
      v.setUint16(tuple + t_ctid_ip_posid, item, true);
      v.setUint16(tuple + t_infomask2, table.columns.length, true);
      v.setUint16(tuple + t_infomask, HEAP_XMIN_COMMITTED | (dead ? HEAP_XMAX_COMMITTED : HEAP_XMAX_INVALID)
        | (table.varwidth ? HEAP_HASVARWIDTH : 0), true);
      pool[tuple + t_hoff] = TUPLE_HOFF;
      pool.set(row.subarray(0, len - TUPLE_HOFF), tuple + TUPLE_HOFF);
      const lpFlags = dead && rng.chance(0.5) ? LP_DEAD : LP_NORMAL;
      v.setUint32(page + lower, (start | (lpFlags << LP_FLAGS_SHIFT) | (len << LP_LEN_SHIFT)) >>> 0, true);
      lower += sizeof_ItemIdData;
      upper = start;
    }
    v.setUint16(page + pd_lower, lower, true);
    v.setUint16(page + pd_upper, upper, true);
    v.setUint16(page + pd_special, PAGE_SIZE, true);
    v.setUint16(page + pd_pagesize_version, PAGE_SIZE | PG_PAGE_LAYOUT_VERSION, true);
  }
}
