import zlib from 'node:zlib';
import { CorruptDumpError, hex, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import { DUMP_MAGIC_LIVE } from '../lkcd/constants.js';
import {
  DUMP_CONFIG_BLOCK_VERSION, DUMP_STATE_ARMED, DUMP_STATE_SAVED, DUMP_STATE_WRITTEN, MAX_DUMP_SEGMENTS,
  dump_config_block, type DumpConfigBlock,
} from './dump_config_block.js';

const CHECKSUM_OFFSET = dump_config_block.offsetOf.checksum;

/** CRC32 of the block's bytes with the checksum field taken as zero. */
export function blockChecksum(bytes: Uint8Array): number {
  const copy = Buffer.from(bytes.subarray(0, dump_config_block.size));
  copy.writeUInt32LE(0, CHECKSUM_OFFSET);
  return zlib.crc32(copy) >>> 0;
}

/** Writes the block at `phys`, sealing it with its checksum. */
export function writeBlock(ram: PhysicalRam, phys: bigint, block: DumpConfigBlock): void {
  const bytes = Buffer.alloc(PAGE_SIZE);
  dump_config_block.encode({ ...block, checksum: 0 }, viewOf(bytes));
  bytes.writeUInt32LE(blockChecksum(bytes), CHECKSUM_OFFSET);
  ram.write(phys, bytes);
}

/**
 * Reads and checks a dump config block: magic, version, size, checksum,
 * state, RAM size and counts. Throws CorruptDumpError naming the field.
 */
export function readBlock(ram: PhysicalRam, phys: bigint): DumpConfigBlock {
  const where = (field: string): { struct: string; field: string; address: bigint; space: 'phys' } =>
    ({ struct: 'dump_config_block', field, address: phys, space: 'phys' });
  if (phys % PAGE_SIZE_N !== 0n) throw new CorruptDumpError(`dump config block address ${hex(phys)} is not page aligned`, where('magic'));
  if (phys < 0n || phys + PAGE_SIZE_N > ram.size) throw new CorruptDumpError(`dump config block address ${hex(phys)} is outside RAM`, where('magic'));
  const bytes = ram.read(phys, PAGE_SIZE);
  const b = dump_config_block.decode(viewOf(bytes));
  if (b.magic !== DUMP_MAGIC_LIVE) throw new CorruptDumpError(`invalid dump magic ${hex(b.magic)} at ${hex(phys)}`, where('magic'));
  if (b.version !== DUMP_CONFIG_BLOCK_VERSION || b.block_size !== dump_config_block.size) {
    throw new CorruptDumpError(`dump config block version ${b.version} size ${b.block_size} is not ours (${DUMP_CONFIG_BLOCK_VERSION}, ${dump_config_block.size})`, where('version'));
  }
  const sum = blockChecksum(bytes);
  if (sum !== b.checksum) throw new CorruptDumpError(`dump config block checksum ${hex(b.checksum)} does not match its contents (${hex(sum)})`, where('checksum'));
  if (![DUMP_STATE_ARMED, DUMP_STATE_SAVED, DUMP_STATE_WRITTEN].includes(b.state)) throw new CorruptDumpError(`dump config block state ${b.state} is unknown`, where('state'));
  if (b.ram_bytes !== ram.size) throw new CorruptDumpError(`dump config block is for ${b.ram_bytes} bytes of RAM, this machine has ${ram.size}`, where('ram_bytes'));
  if (b.nr_segments > MAX_DUMP_SEGMENTS) throw new CorruptDumpError(`nr_segments ${b.nr_segments} exceeds ${MAX_DUMP_SEGMENTS}`, where('nr_segments'));
  return b;
}
