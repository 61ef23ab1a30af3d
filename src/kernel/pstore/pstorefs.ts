import { UsageError, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';
import type { Kernel } from '../kernel.js';
import { BuddyAllocator } from '../mm/buddy.js';
import { MemMap } from '../mm/mem_map.js';
import { printk } from '../printk.js';
import { LOGLEVEL_ERR, LOGLEVEL_WARNING } from '../constants.js';
import {
  PSTORE_COMPRESSED_SUFFIX, PSTORE_FILE_MODE, PSTORE_TYPE_DMESG, PSTORE_TYPE_NAMES, RAMOOPS_BACKEND_NAME,
} from './constants.js';
import { readPstoreState, writePstoreState } from './console.js';
import { inflateRecord, PSTORE_COMPRESS_DEFLATE, wallClock } from './platform.js';
import { ramoopsErase, type RamoopsRecord } from './ramoops.js';
import { PSTORE_FILE_COMPRESSED, PSTORE_FILE_UNLINKED, pstore_file, type PstoreFile } from './structs/pstore_state.js';

/** The smallest order of pages that holds `bytes`. */
function orderFor(bytes: number): number {
  const pages = Math.max(1, Math.ceil(bytes / PAGE_SIZE));
  return Math.ceil(Math.log2(pages));
}

/**
 * decompress_record(): a compressed dmesg record is inflated (at most
 * big_oops_buf_sz bytes) and its ECC notice kept after it; one that
 * cannot be inflated stays compressed, and its file gets ".enc.z".
 */
function decompressRecord(kernel: Kernel, r: RamoopsRecord): RamoopsRecord {
  if (!r.compressed) return r;
  if (r.type !== PSTORE_TYPE_DMESG) {
    printk(kernel, `pstore: ignored compressed record type ${r.type}`, LOGLEVEL_WARNING);
    return r;
  }
  const s = readPstoreState(kernel)!;
  if (s.compress !== PSTORE_COMPRESS_DEFLATE) {
    printk(kernel, 'pstore: no decompression method initialized!', LOGLEVEL_WARNING);
    return r;
  }
  const out = inflateRecord(r.data, s.big_oops_buf_sz);
  if (!out) {
    printk(kernel, 'pstore: crypto_comp_decompress failed, ret = -22!', LOGLEVEL_ERR);
    return r;
  }
  return { ...r, data: out, compressed: false };
}

/**
 * Mounting pstorefs (pstore_get_backend_records + pstore_mkfile): each
 * record the backend read becomes a file whose contents the kernel keeps in
 * memory (here: pages from the buddy allocator, listed in a file table), so
 * they outlive the zones: the console zone is rewritten from this boot on.
 */
export function pstoreMount(kernel: Kernel, records: readonly RamoopsRecord[]): void {
  const s = readPstoreState(kernel);
  if (!s) return;
  const memmap = new MemMap(kernel);
  const buddy = new BuddyAllocator(kernel, memmap);
  const entries: PstoreFile[] = [];
  for (const raw of records) {
    const r = decompressRecord(kernel, raw);
    const notice = Buffer.from(r.eccNotice, 'latin1');
    const body = Buffer.concat([r.data, notice]);
    const order = orderFor(body.length);
    const pfn = buddy.alloc(order);
    if (pfn === null) {
      printk(kernel, `pstore: out of memory for the ${PSTORE_TYPE_NAMES[r.type] ?? r.type} record ${r.id}`, LOGLEVEL_ERR);
      continue;
    }
    kernel.ram.write(pfn * PAGE_SIZE_N, body);
    entries.push({
      type: r.type, flags: r.compressed ? PSTORE_FILE_COMPRESSED : 0, id: BigInt(r.id), time_sec: r.timeSec, time_nsec: r.timeNsec,
      size: body.length, data_pfn: pfn, data_order: order, ecc_notice_size: notice.length,
    });
  }
  let filesPfn = 0n;
  let filesOrder = 0;
  if (entries.length) {
    filesOrder = orderFor(entries.length * pstore_file.size);
    const pfn = buddy.alloc(filesOrder);
    if (pfn === null) {
      printk(kernel, 'pstore: out of memory for the file table', LOGLEVEL_ERR);
      for (const e of entries) buddy.free(e.data_pfn, e.data_order);
      entries.length = 0;
    } else {
      filesPfn = pfn;
      const table = Buffer.alloc(entries.length * pstore_file.size);
      entries.forEach((e, i) => pstore_file.encode(e, viewOf(table), i * pstore_file.size));
      kernel.ram.write(pfn * PAGE_SIZE_N, table);
    }
  }
  const now = wallClock(kernel);
  writePstoreState(kernel, { ...readPstoreState(kernel)!, nr_files: entries.length, files_pfn: filesPfn, files_order: filesOrder, mount_time: now.sec });
}

/** One file of /sys/fs/pstore. */
export interface PstoreFileInfo {
  name: string;
  type: number;
  typeName: string;
  id: bigint;
  mode: number;
  /** The record's time, or the mount time for records without one. */
  mtimeSec: bigint;
  mtimeNsec: number;
  size: number;
  compressed: boolean;
  eccNoticeSize: number;
  /** Index in the file table. */
  slot: number;
}

function readTable(kernel: Kernel): PstoreFile[] {
  const s = readPstoreState(kernel);
  if (!s || s.nr_files === 0 || s.files_pfn === 0n) return [];
  // The table was sized for nr_files when mounted: never read past its pages.
  const max = Math.floor(((1 << s.files_order) * PAGE_SIZE) / pstore_file.size);
  const n = Math.min(s.nr_files, max);
  const raw = kernel.ram.read(s.files_pfn * PAGE_SIZE_N, n * pstore_file.size);
  return Array.from({ length: n }, (_, i) => pstore_file.decode(viewOf(raw), i * pstore_file.size));
}

/** pstore_mkfile()'s name: "<type>-<backend>-<id>", with ".enc.z" for a record left compressed. */
export function pstoreFileName(type: number, id: bigint, compressed: boolean): string {
  return `${PSTORE_TYPE_NAMES[type] ?? 'unknown'}-${RAMOOPS_BACKEND_NAME}-${id}${compressed ? PSTORE_COMPRESSED_SUFFIX : ''}`;
}

/** The files of /sys/fs/pstore, in the order they were made. */
export function pstoreFiles(kernel: Kernel): PstoreFileInfo[] {
  const s = readPstoreState(kernel);
  if (!s) return [];
  return readTable(kernel).flatMap((e, slot) => {
    if (e.flags & PSTORE_FILE_UNLINKED) return [];
    const compressed = (e.flags & PSTORE_FILE_COMPRESSED) !== 0;
    const hasTime = e.time_sec !== 0n;
    return [{
      name: pstoreFileName(e.type, e.id, compressed), type: e.type, typeName: PSTORE_TYPE_NAMES[e.type] ?? 'unknown', id: e.id,
      mode: PSTORE_FILE_MODE, mtimeSec: hasTime ? e.time_sec : s.mount_time, mtimeNsec: hasTime ? e.time_nsec : 0,
      size: e.size, compressed, eccNoticeSize: e.ecc_notice_size, slot,
    }];
  });
}

function lookup(kernel: Kernel, name: string): { info: PstoreFileInfo; entry: PstoreFile } {
  const info = pstoreFiles(kernel).find((f) => f.name === name);
  if (!info) throw new UsageError(`/sys/fs/pstore/${name}: no such file`, { file: `/sys/fs/pstore/${name}` });
  return { info, entry: readTable(kernel)[info.slot] };
}

/** The contents of a pstore file. */
export function pstoreRead(kernel: Kernel, name: string): Buffer {
  const { entry } = lookup(kernel, name);
  // The data pages were allocated for this size at mount: the read stays inside them.
  const max = (1 << entry.data_order) * PAGE_SIZE;
  return kernel.ram.read(entry.data_pfn * PAGE_SIZE_N, Math.min(entry.size, max));
}

/**
 * Unlinking a pstore file (pstore_unlink -> ramoops_pstore_erase): the
 * record's zone is zapped, so the record is gone from persistent RAM too,
 * and the memory that held the file is freed.
 */
export function pstoreUnlink(kernel: Kernel, name: string): void {
  const { info, entry } = lookup(kernel, name);
  ramoopsErase(kernel, entry.type, Number(entry.id));
  const memmap = new MemMap(kernel);
  new BuddyAllocator(kernel, memmap).free(entry.data_pfn, entry.data_order);
  const s = readPstoreState(kernel)!;
  const at = s.files_pfn * PAGE_SIZE_N + BigInt(info.slot * pstore_file.size);
  kernel.ram.write(at, pstore_file.toBytes({ ...entry, flags: entry.flags | PSTORE_FILE_UNLINKED }));
}
